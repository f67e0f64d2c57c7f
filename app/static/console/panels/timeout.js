// Step 2: the slow demo with a delay control; the elapsed time counts up while the request
// waits, and past the limit the answer is a 504.
import { call, describe } from "../lib/api.js";
import { $, setText } from "../lib/dom.js";

export function init(resilience) {
  const limit = resilience ? resilience.timeout.seconds : null;
  setText("to-limit", limit ?? "?");
  $("to-run").addEventListener("click", async () => {
    const delay = Math.min(60, Math.max(0, Number($("to-delay").value) || 0));
    $("to-run").disabled = true;
    delete $("to-result").dataset.status;
    const started = performance.now();
    const showElapsed = () => {
      const seconds = (performance.now() - started) / 1000;
      setText("to-elapsed", `${seconds.toFixed(1)} s`);
      $("to-elapsed").dataset.seconds = seconds.toFixed(1);
    };
    showElapsed();
    const ticking = setInterval(showElapsed, 100);
    setText("to-result", `Waiting for a ${delay} s call (the limit is ${limit ?? "?"} s)…`);
    try {
      const answer = await call("GET", `/api/v1/demo/slow?delay=${delay}`);
      const verdict = answer.status === 504 ? "timed out (504)" : describe(answer);
      setText("to-result", `${verdict} after ${(answer.ms / 1000).toFixed(2)} s`);
      $("to-result").dataset.status = answer.status;
    } finally {
      clearInterval(ticking);
      showElapsed();
      $("to-run").disabled = false;
    }
  });
}
