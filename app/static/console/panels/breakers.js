// Step 3: every breaker's state, failure rate and rejections (polled from /resilience, which
// is not rate-limited), transitions streamed from the bus, and the flaky demo as the control.
import { call, describe } from "../lib/api.js";
import { $, el, prepend, setText } from "../lib/dom.js";

const SYMBOL = { closed: "●", open: "○", half_open: "◐" };

/** The failure rate as a bar coloured by the breaker's state (a meter would colour the rate:
 * green at 100% failure). The width is set through the CSSOM, which the CSP allows. */
function bar(breaker, rate) {
  const fill = el("span", { class: "fill" });
  fill.style.width = `${rate}%`;
  return el(
    "span",
    {
      class: `bar ${breaker.state}`,
      role: "meter",
      "aria-label": `${breaker.name} failure rate`,
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": rate,
    },
    fill,
  );
}

function row(breaker) {
  const rate = Math.round(breaker.failure_rate * 100);
  const state = breaker.state.replace("_", "-");
  const retry = breaker.retry_after_seconds ? ` (retry in ${breaker.retry_after_seconds} s)` : "";
  return el(
    "tr",
    { "data-breaker": breaker.name, "data-state": breaker.state },
    el("th", { scope: "row" }, breaker.name),
    el(
      "td",
      { class: `state ${breaker.state}` },
      el("span", { "aria-hidden": "true" }, `${SYMBOL[breaker.state] || "?"} `),
      `${state}${retry}`,
    ),
    el("td", {}, bar(breaker, rate), ` ${rate}% of ${breaker.calls_in_window}`),
    el("td", {}, String(breaker.rejected)),
  );
}

async function refresh() {
  const answer = await call("GET", "/api/v1/resilience");
  if (!answer.ok) return null;
  $("br-table").replaceChildren(...answer.body.breakers.map(row));
  return answer.body;
}

function replica(report) {
  const open = report.breakers.filter((b) => b.state !== "closed");
  const faults = report.dependencies.filter((d) => d.fault);
  const age = Math.max(0, Date.now() / 1000 - report.at);
  return el(
    "tr",
    { "data-member": report.member, "data-open": open.map((b) => b.name).join(" ") },
    el("th", { scope: "row" }, report.member),
    el("td", {}, open.length ? open.map((b) => `${b.name}: ${b.state.replace("_", "-")}`).join(", ") : "none"),
    el("td", {}, faults.length ? faults.map((d) => `${d.name}: ${d.fault.kind}`).join(", ") : "none"),
    el("td", {}, `${age.toFixed(1)} s ago`),
  );
}

async function refreshFleet() {
  const answer = await call("GET", "/api/v1/resilience/fleet");
  if (!answer.ok) return;
  $("fleet-table").replaceChildren(...answer.body.replicas.map(replica));
  const note = answer.body.shared
    ? answer.body.complete
      ? `(${answer.body.replicas.length} sharing Redis)`
      : "(Redis unreachable: this replica only)"
    : "(memory store: this replica only)";
  setText("fleet-note", note);
}

function follow(names) {
  const source = new EventSource("/api/v1/events/stream?topic=breaker.*");
  const show = (event) => {
    const data = JSON.parse(event.data).data;
    prepend(
      $("br-events"),
      el(
        "li",
        { "data-to": data.to_state },
        `${data.at.slice(11, 19)} ${data.breaker}: ${data.from_state} → ${data.to_state}`,
      ),
      20,
    );
    refresh();
  };
  // Each breaker publishes on breaker.<name>, and a bus event's SSE event name is its topic.
  for (const name of names) source.addEventListener(`breaker.${name}`, show);
}

export function init(resilience) {
  const rate = $("br-rate");
  const showRate = () => setText("br-rate-out", `${Math.round(rate.value * 100)}%`);
  rate.addEventListener("input", showRate);
  showRate();
  $("br-send").addEventListener("click", async () => {
    const count = Math.min(50, Math.max(1, Number($("br-count").value) || 1));
    const tally = {};
    $("br-send").disabled = true;
    try {
      for (let i = 0; i < count; i++) {
        const answer = await call("GET", `/api/v1/demo/flaky?failure_rate=${rate.value}`);
        const key = answer.status === 503 ? "503 refused by the breaker" : String(answer.status);
        tally[key] = (tally[key] || 0) + 1;
        if (answer.status === 429) {
          setText("br-calls", `Stopped: ${describe(answer)}`);
          break;
        }
      }
    } finally {
      $("br-send").disabled = false;
    }
    setText(
      "br-calls",
      Object.entries(tally)
        .map(([status, n]) => `${n} × ${status}`)
        .join(", "),
    );
    refresh();
  });
  // Drawn from the state main.js already read, so the table is whole once the page is ready.
  if (resilience) $("br-table").replaceChildren(...resilience.breakers.map(row));
  follow(resilience ? resilience.breakers.map((b) => b.name) : []);
  setInterval(refresh, 1000);
  refreshFleet();
  setInterval(refreshFleet, 1000);
}
