// Step 9: the probes as lights, request rate and p99 from /metrics, and the readiness drain.
import { call, describe, signIn, tokens } from "../lib/api.js";
import { $, el, light, setText } from "../lib/dom.js";
import { onScrape, quantile, total } from "../lib/metrics.js";

const PROBES = [
  ["live", "/live"],
  ["ready", "/ready?verbose"],
  ["health", "/health"],
];
const rates = [];

async function probe() {
  const results = await Promise.all(
    PROBES.map(async ([name, path]) => {
      const answer = await call("GET", path);
      return light(name, answer.status === 0 ? null : answer.ok, describe(answer));
    }),
  );
  $("probe-lights").replaceChildren(...results);
  $("lights").replaceChildren(...results.map((node) => node.cloneNode(true)));
}

function chart() {
  const max = Math.max(1, ...rates);
  const points = rates.map((rate, i) => `${(i * 300) / 59},${58 - (rate / max) * 56}`).join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  $("m-chart").replaceChildren(line);
}

function drawRate(scrape, before, seconds) {
  if (!before || seconds <= 0) return;
  const requests = total(scrape, "http_requests_total") - total(before, "http_requests_total");
  const rate = Math.max(0, requests / seconds);
  rates.push(rate);
  if (rates.length > 60) rates.shift();
  setText("m-rate", rate.toFixed(1));
  const p99 = quantile(0.99, before, scrape, "http_request_duration_seconds");
  setText("m-p99", p99 === null ? "no requests" : `${(p99 * 1000).toFixed(1)} ms`);
  chart();
}

async function signInAdmin(event) {
  event.preventDefault();
  try {
    tokens.admin = await signIn($("drain-email").value, $("drain-password").value);
  } catch (error) {
    setText("drain-result", `Sign-in refused: ${error.message}`);
    return;
  }
  const answer = await call("GET", "/api/v1/admin/readiness", { token: tokens.admin });
  if (answer.status === 404) {
    setText("drain-result", "The readiness drain is off here (production mode).");
    return;
  }
  if (!answer.ok) {
    setText("drain-result", describe(answer));
    return;
  }
  showDrain(!answer.body.ready);
  $("drain-toggle").disabled = false;
}

function showDrain(drained) {
  $("drain-toggle").setAttribute("aria-pressed", String(drained));
  setText("drain-toggle", drained ? "Undrain this replica" : "Drain this replica");
  setText(
    "drain-result",
    drained
      ? "Drained: /ready answers 503, so Kubernetes stops sending traffic here; requests that arrive are still served."
      : "Serving: /ready answers 200.",
  );
}

async function toggle() {
  const drained = $("drain-toggle").getAttribute("aria-pressed") === "true";
  const answer = await call("PUT", "/api/v1/admin/readiness", {
    json: { ready: drained },
    token: tokens.admin,
  });
  if (!answer.ok) {
    setText("drain-result", describe(answer));
    return;
  }
  showDrain(!answer.body.ready);
  probe();
}

export function init() {
  probe();
  setInterval(probe, 2000);
  onScrape(drawRate);
  $("drain-form").addEventListener("submit", signInAdmin);
  $("drain-toggle").addEventListener("click", toggle);
}
