// Step 3, second half: the store as a dependency. Inject a fault (admin), send traffic, and
// watch the store's breaker, its calls in flight and the fault, live from /resilience; each
// answer of the traffic is tallied as fresh, stale (Cache-Status), refused (503) or other.
import { call, describe, signIn, tokens } from "../lib/api.js";
import { $, el, setText } from "../lib/dom.js";
import { onScrape, total } from "../lib/metrics.js";

const FAULTS = {
  outage: { kind: "outage" },
  latency: { kind: "latency", latency_ms: 2000 },
  error: { kind: "error", error_rate: 0.5 },
};
let reader = null; // a user created before any fault, read by the traffic

function row(dependency) {
  const fault = dependency.fault;
  return el(
    "tr",
    { "data-dependency": dependency.name, "data-state": dependency.breaker },
    el("th", { scope: "row" }, dependency.name),
    el("td", { class: `state ${dependency.breaker}` }, dependency.breaker.replace("_", "-")),
    el("td", {}, `${dependency.in_flight} of ${dependency.max_in_flight}`),
    el(
      "td",
      { "data-fault": fault ? fault.kind : "none" },
      fault ? `${fault.kind}, ${fault.seconds_left} s left` : dependency.probing ? "probing…" : "none",
    ),
  );
}

async function refresh() {
  const answer = await call("GET", "/api/v1/resilience");
  if (answer.ok) $("dep-table").replaceChildren(...answer.body.dependencies.map(row));
}

async function ensureReader() {
  if (reader) return reader;
  const email = `reader-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const answer = await call("POST", "/api/v1/users", {
    json: { email, name: "Read Me", password: crypto.randomUUID() },
  });
  if (answer.status !== 201) throw new Error(`could not create a user to read: ${describe(answer)}`);
  reader = answer.body.id;
  await call("GET", `/api/v1/users/${reader}`); // this replica now holds a copy
  return reader;
}

async function signInAdmin(event) {
  event.preventDefault();
  try {
    tokens.admin = await signIn($("dep-email").value, $("dep-password").value);
    await ensureReader();
  } catch (error) {
    setText("dep-result", `Sign-in refused: ${error.message}`);
    return;
  }
  for (const button of $("dep-faults").querySelectorAll("[data-fault], [data-admin]")) {
    button.disabled = false;
  }
  setText("dep-result", "Signed in: pick a fault, then send traffic.");
}

async function inject(kind, target = "store") {
  const seconds = Math.min(300, Math.max(1, Number($("dep-seconds").value) || 20));
  const answer = await call("PUT", `/api/v1/admin/faults/${target}`, {
    json: { ...FAULTS[kind], seconds },
    token: tokens.admin,
  });
  if (answer.status === 404) {
    setText("dep-result", "This replica uses Redis: its dependency is named redis (see the curl).");
    return;
  }
  setText(
    "dep-result",
    answer.ok
      ? `Injected: ${kind} into ${target} for ${seconds} s. ` +
          (target === "process_pool"
            ? "Now submit a scoring job (step 7), and send traffic."
            : "Now send traffic.")
      : describe(answer),
  );
  refresh();
}

async function traffic() {
  const tally = { fresh: 0, stale: 0, refused: 0, other: 0 };
  $("dep-traffic").disabled = true;
  try {
    const id = await ensureReader();
    const sends = [];
    for (let i = 0; i < 20; i++) {
      sends.push(call("GET", `/api/v1/users/${id}`, { cache: "no-store" }));
    }
    for (let i = 0; i < 2; i++) {
      sends.push(
        call("POST", "/api/v1/users", {
          json: { email: `w-${crypto.randomUUID().slice(0, 8)}@example.com`, name: "W", password: crypto.randomUUID() },
        }),
      );
    }
    for (const answer of await Promise.all(sends)) {
      if (answer.status === 503) tally.refused++;
      else if (answer.ok && (answer.headers.get("Cache-Status") || "").includes("stale-if-error")) tally.stale++;
      else if (answer.ok) tally.fresh++;
      else tally.other++;
    }
  } catch (error) {
    setText("dep-result", error.message);
    return;
  } finally {
    $("dep-traffic").disabled = false;
  }
  const out = $("dep-result");
  out.dataset.fresh = tally.fresh;
  out.dataset.stale = tally.stale;
  out.dataset.refused = tally.refused;
  setText(
    "dep-result",
    `${tally.fresh} fresh, ${tally.stale} stale (served from this replica's copy), ` +
      `${tally.refused} refused with 503, ${tally.other} other.`,
  );
  refresh();
}

/** Kill one worker of the CPU pool for real, then send a CPU task and say who answered it. */
async function killWorker() {
  const killed = await call("POST", "/api/v1/admin/scoring/kill-worker", { token: tokens.admin });
  if (!killed.ok) {
    setText("dep-result", `Kill refused: ${describe(killed)}`);
    return;
  }
  const pid = killed.body.killed_pid;
  const task = await call("POST", "/api/v1/cpu-intensive", { json: { samples: 100000 } });
  const out = $("dep-result");
  out.dataset.killed = pid;
  out.dataset.task = task.status;
  out.dataset.answeredBy = task.ok ? task.body.worker_pid : "";
  setText(
    "dep-result",
    task.ok
      ? `Killed scoring worker ${pid}. The next CPU task met the broken pool, which was ` +
          `replaced, and ran again: answered ${task.status} by worker ${task.body.worker_pid}.`
      : `Killed scoring worker ${pid}; the next CPU task: ${describe(task)}`,
  );
}

/** What each dependency's pipeline did since the server started, from one /metrics scrape. */
function drawCounts(scrape) {
  const names = new Set((scrape.dependency_calls_total || []).map((s) => s.labels.dependency));
  $("dep-counts").replaceChildren(
    ...[...names].sort().map((dependency) => {
      const calls = (outcome) => total(scrape, "dependency_calls_total", { dependency, outcome });
      const retries = (kind) => total(scrape, "dependency_retry_calls_total", { dependency, kind });
      const stale = total(scrape, "dependency_fallbacks_total", { dependency });
      const cutoffs = total(scrape, "dependency_deadline_cutoffs_total", { dependency });
      return el(
        "li",
        { "data-dependency": dependency, "data-stale": stale },
        `${dependency}: ${calls("success")} calls answered, ${calls("failure")} failed, ` +
          `${calls("rejected_open") + calls("rejected_full")} refused by its breaker or bulkhead; ` +
          `${retries("successful_with_retry")} reads saved by a retry, ` +
          `${retries("budget_exhausted")} not retried (budget spent); ` +
          `${stale} stale answers served; ${cutoffs} calls cut by a deadline.`,
      );
    }),
  );
}

export function init() {
  onScrape(drawCounts);
  $("dep-signin").addEventListener("submit", signInAdmin);
  for (const button of $("dep-faults").querySelectorAll("[data-fault]")) {
    button.addEventListener("click", () => inject(button.dataset.fault, button.dataset.target));
  }
  $("dep-traffic").addEventListener("click", traffic);
  $("dep-kill-worker").addEventListener("click", killWorker);
  refresh();
  setInterval(refresh, 1000);
}
