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
}

function startCountdown(seconds) {
  clearInterval(countdown);
  let left = seconds;
  const tick = () => {
    setText(
      "rl-retry",
      left > 0 ? `429 Too Many Requests: Retry-After ${left} s` : "Quota refilling: try again.",
    );
    if (left-- <= 0) clearInterval(countdown);
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
