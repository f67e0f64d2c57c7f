// Step 6: publish with a topic, subscribe with a pattern, and see delivery and drops.
import { call, describe } from "../lib/api.js";
import { $, el, prepend, setText } from "../lib/dom.js";
import { onScrape, total } from "../lib/metrics.js";
import { follow } from "../lib/sse.js";

let subscription = null;
let delivered = 0;

async function subscribe() {
  if (subscription) subscription.abort();
  const controller = new AbortController();
  subscription = controller;
  const pattern = $("bus-pattern").value.trim() || "*";
  setText("bus-state", `following ${pattern}`);
  $("bus-state").dataset.pattern = pattern;
  try {
    await follow(
      `/api/v1/events/stream?topic=${encodeURIComponent(pattern)}`,
      (event) => {
        if (event.event === "gap") {
          prepend($("bus-log"), el("li", { class: "meta" }, `gap: ${JSON.parse(event.data).detail}`));
          return;
        }
        const data = JSON.parse(event.data);
        delivered++;
        setText("bus-delivered", delivered);
        prepend(
          $("bus-log"),
          el("li", { "data-topic": data.topic }, `${data.id} ${data.topic} ${JSON.stringify(data.data)}`),
        );
      },
      controller.signal,
    );
    setText("bus-state", "ended by the server: subscribe again");
  } catch (error) {
    if (error.name !== "AbortError") setText("bus-state", `refused: ${error.message}`);
  }
}

async function slowSubscriber() {
  const events = Math.min(500, Math.max(1, Number($("slow-events").value) || 1));
  const queue = Math.min(64, Math.max(1, Number($("slow-queue").value) || 1));
  $("slow-run").disabled = true;
  setText("slow-result", `Publishing ${events} events to a reader with a queue of ${queue}…`);
  try {
    const answer = await call("POST", "/api/v1/demo/slow-subscriber", {
      json: { events, queue, read_every_ms: 20 },
    });
    if (!answer.ok) {
      setText("slow-result", describe(answer));
      return;
    }
    const r = answer.body;
    const gaps = r.gaps.length
      ? ` It was told by ${r.gaps.length} gap event${r.gaps.length > 1 ? "s" : ""}: ` +
        r.gaps.map((g) => `${g.dropped} lost (ids ${g.first_id} to ${g.last_id})`).join("; ") + "."
      : " Its queue never overflowed: nothing was lost.";
    setText(
      "slow-result",
      `Published ${r.published}; the slow subscriber handled ${r.delivered} and the bus dropped ` +
        `${r.dropped} of its oldest.${gaps} Publishing never waited for it.`,
    );
    $("slow-result").dataset.dropped = r.dropped;
    $("slow-result").dataset.delivered = r.delivered;
  } finally {
    $("slow-run").disabled = false;
  }
}

export function init() {
  $("slow-run").addEventListener("click", slowSubscriber);
  $("bus-subscribe").addEventListener("click", subscribe);
  $("bus-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const topic = $("bus-topic").value.trim();
    const field = $("bus-data");
    let data;
    try {
      data = JSON.parse(field.value);
    } catch (error) {
      // Never guess: text that is not JSON is not published (as a string or otherwise).
      field.setAttribute("aria-invalid", "true");
      setText(
        "bus-result",
        `Not published: the data is not JSON (${error.message}). Write a JSON value: ` +
          `"text" in quotes, a number, or {"key": "value"}.`,
      );
      return;
    }
    field.removeAttribute("aria-invalid");
    const answer = await call("POST", "/api/v1/events", { json: { topic, data } });
    setText("bus-result", answer.ok ? `published ${answer.body.id} on ${topic}` : describe(answer));
  });
  onScrape((scrape) => setText("bus-dropped", total(scrape, "events_dropped_total")));
}
