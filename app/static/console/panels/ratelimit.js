// Step 1: fire a burst and watch the quota drain; a 429 shows Retry-After counting down.
import { call, onQuota } from "../lib/api.js";
import { $, setText } from "../lib/dom.js";

let countdown = null;

function showQuota({ remaining, limit, status, retryAfter }) {
  if (Number.isFinite(limit)) $("rl-meter").max = limit;
  if (Number.isFinite(remaining)) {
    $("rl-meter").value = remaining;
    setText("rl-left", `${remaining} of ${limit ?? "?"} left`);
  }
  if (status === 429 && retryAfter > 0) startCountdown(retryAfter);
  else if (status !== 429) clearNotice(); // an answer that was served: the quota is back
}

function clearNotice() {
  clearInterval(countdown);
  countdown = null;
  setText("rl-retry", "");
  delete $("rl-retry").dataset.state;
}

function startCountdown(seconds) {
  clearInterval(countdown);
  let left = seconds;
  $("rl-retry").dataset.state = "waiting";
  const tick = () => {
    if (left > 0) {
      setText("rl-retry", `429 Too Many Requests: Retry-After ${left} s`);
      left--;
      return;
    }
    // Retry-After has passed: at least one request's worth has refilled. Say so, and stop
    // showing a warning about a wait that is over.
    clearInterval(countdown);
    countdown = null;
    setText("rl-retry", "");
    $("rl-retry").dataset.state = "refilled";
    $("rl-meter").value = Math.max(1, $("rl-meter").value);
    setText("rl-left", "refilled: at least 1 left");
  };
  tick();
  countdown = setInterval(tick, 1000);
}

export function init() {
  onQuota(showQuota);
  $("rl-fire").addEventListener("click", async () => {
    const count = Math.min(300, Math.max(1, Number($("rl-count").value) || 1));
    let ok = Number($("rl-ok").textContent);
    let refused = Number($("rl-refused").textContent);
    $("rl-fire").disabled = true;
    try {
      // Sequential, so the meter visibly drains one answer at a time.
      for (let i = 0; i < count; i++) {
        const answer = await call("GET", "/api/v1/demo/slow?delay=0");
        if (answer.status === 429) refused++;
        else if (answer.ok) ok++;
        setText("rl-ok", ok);
        setText("rl-refused", refused);
      }
    } finally {
      $("rl-fire").disabled = false;
    }
  });
}
