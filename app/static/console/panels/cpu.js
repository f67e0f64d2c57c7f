// Step 7: a scoring job in the worker processes, its progress bar fed by bus events, and the
// event loop's lag from /metrics beside it; the blocking demo for comparison.
import { call, describe } from "../lib/api.js";
import { $, setText } from "../lib/dom.js";
import { onScrape, total } from "../lib/metrics.js";
import { follow } from "../lib/sse.js";

function records(count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    out.push({
      id: `r${i}`,
      features: { speed: (i * 7) % 11, cost: (i * 13) % 17, rating: ((i * 3) % 50) / 10 },
    });
  }
  return out;
}

async function submit() {
  const count = Math.min(100000, Math.max(100, Number($("cpu-records").value) || 100));
  $("cpu-submit").disabled = true;
  $("cpu-progress").value = 0;
  const controller = new AbortController();
  let jobId = null;
  const early = [];
  const show = (data) => {
    $("cpu-progress").value = data.progress;
    setText("cpu-status", `${data.status}, ${Math.round(data.progress * 100)}%`);
    $("cpu-status").dataset.status = data.status;
    if (data.status === "done" || data.status === "failed") controller.abort();
  };
  // Subscribe first, so no progress event is published before we listen.
  const following = follow(
    "/api/v1/events/stream?topic=scoring.*",
    (event) => {
      if (event.event !== "scoring.jobs") return;
      const data = JSON.parse(event.data).data;
      if (jobId === null) early.push(data);
      else if (data.job_id === jobId) show(data);
    },
    controller.signal,
  ).catch(() => {});
  setText("cpu-status", `sending ${count} records…`);
  const answer = await call("POST", "/api/v1/scoring/jobs", {
    json: { records: records(count), weights: { speed: 1, cost: -1, rating: 2 } },
  });
  if (!answer.ok) {
    controller.abort();
    setText("cpu-status", describe(answer));
  } else {
    jobId = answer.body.id;
    setText("cpu-status", `job ${jobId} ${answer.body.status}`);
    for (const data of early.filter((d) => d.job_id === jobId)) show(data);
  }
  await following;
  $("cpu-submit").disabled = false;
}

async function blocking() {
  $("cpu-blocking").disabled = true;
  setText("cpu-blocking-out", "A blocking call runs in the thread pool for 2 s…");
  const answer = await call("GET", "/api/v1/blocking-demo?delay=2");
  $("cpu-blocking").disabled = false;
  if (!answer.ok) {
    setText("cpu-blocking-out", describe(answer));
    return;
  }
  const b = answer.body;
  setText(
    "cpu-blocking-out",
    `The loop ticked ${b.loop_ticks} of ${b.expected_ticks} times during the blocking call ` +
      `(worst lag ${b.worst_tick_lag_ms} ms): it stayed free.`,
  );
}

export function init() {
  $("cpu-submit").addEventListener("click", submit);
  $("cpu-blocking").addEventListener("click", blocking);
  onScrape((scrape) => {
    const lag = total(scrape, "event_loop_lag_seconds");
    $("cpu-lag").value = Math.min(lag, 0.25);
    setText("cpu-lag-out", `${(lag * 1000).toFixed(1)} ms`);
  });
}
