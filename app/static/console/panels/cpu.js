// Step 7: a scoring job in the worker processes, its progress bar fed by bus events, and the
// event loop's lag from /metrics beside it; the blocking demo for comparison.
import { call, describe } from "../lib/api.js";
import { $, setText, sleep } from "../lib/dom.js";
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

/** Ask /live every 50 ms until `done` settles; resolves to the slowest answer in ms. */
async function watchLive(done) {
  let slowest = 0;
  let finished = false;
  done.finally(() => (finished = true));
  while (!finished) {
    const answer = await call("GET", "/live");
    slowest = Math.max(slowest, answer.ms);
    await sleep(50);
  }
  return slowest;
}

async function runWhere(where, samples) {
  const path = where === "pool" ? "/api/v1/cpu-intensive" : "/api/v1/demo/cpu-on-loop";
  const row = document.querySelector(`#cpu tr[data-where=${where}]`);
  row.querySelector("[data-took]").textContent = "running…";
  row.querySelector("[data-live]").textContent = "…";
  const job = call("POST", path, { json: { samples, seed: 1 } });
  const [answer, slowest] = await Promise.all([job, watchLive(job)]);
  if (!answer.ok) {
    row.querySelector("[data-took]").textContent = describe(answer);
    return null;
  }
  row.querySelector("[data-took]").textContent = `${answer.body.elapsed_ms} ms`;
  row.querySelector("[data-live]").textContent = `${slowest} ms`;
  row.dataset.took = answer.body.elapsed_ms;
  row.dataset.live = slowest;
  return { took: answer.body.elapsed_ms, live: slowest };
}

async function compare() {
  const samples = Number($("cmp-samples").value);
  $("cmp-run").disabled = true;
  setText("cmp-result", "Running in the pool…");
  try {
    const pool = await runWhere("pool", samples);
    setText("cmp-result", "Running on the loop…");
    const loop = await runWhere("loop", samples);
    if (pool && loop) {
      setText(
        "cmp-result",
        `In the pool, /live answered within ${pool.live} ms while the work ran; on the loop it ` +
          `waited up to ${loop.live} ms, because nothing else runs while the loop computes.`,
      );
      $("cmp-result").dataset.done = "true";
    }
  } finally {
    $("cmp-run").disabled = false;
  }
}

export function init() {
  $("cmp-run").addEventListener("click", compare);
  $("cpu-submit").addEventListener("click", submit);
  $("cpu-blocking").addEventListener("click", blocking);
  onScrape((scrape) => {
    const lag = total(scrape, "event_loop_lag_seconds");
    $("cpu-lag").value = Math.min(lag, 0.25);
    setText("cpu-lag-out", `${(lag * 1000).toFixed(1)} ms`);
  });
}
