// Step 2: the slow demo with a delay control; past the limit the answer is a 504.
import { call, describe } from "../lib/api.js";
import { $, setText } from "../lib/dom.js";

export function init(resilience) {
  setText("to-limit", resilience ? resilience.timeout.seconds : "?");
  $("to-run").addEventListener("click", async () => {
    const delay = Math.min(60, Math.max(0, Number($("to-delay").value) || 0));
    $("to-run").disabled = true;
    setText("to-result", `Waiting up to ${delay} s…`);
    try {
      const answer = await call("GET", `/api/v1/demo/slow?delay=${delay}`);
      const verdict = answer.status === 504 ? "timed out (504)" : describe(answer);
      setText("to-result", `${verdict} after ${(answer.ms / 1000).toFixed(2)} s`);
      $("to-result").dataset.status = answer.status;
    } finally {
      $("to-run").disabled = false;
    }
  });
}
