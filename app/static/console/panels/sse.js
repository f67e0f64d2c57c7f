// Step 4: a ticker over EventSource. "Drop connection" asks the server to end the stream; the
// browser reconnects by itself with Last-Event-ID, and the server continues after it. Every
// tick is checked against the one before it, so a lost tick would show as "missed".
import { call, describe } from "../lib/api.js";
import { $, el, prepend, setText } from "../lib/dom.js";

let source = null;
let handle = null;
let last = null;
let reconnects = 0;
let missed = 0;
let opened = 0;

function setState(text) {
  setText("sse-state", text);
  $("sse-state").dataset.state = text;
}

function start() {
  source = new EventSource("/api/v1/sse/stream?interval=0.5&handle=true");
  opened = 0;
  setState("connecting");
  source.addEventListener("open", () => {
    if (opened++ > 0 || last !== null) reconnects++;
    setText("sse-reconnects", reconnects);
    setState("open");
  });
  source.addEventListener("error", () => {
    // EventSource retries on its own (the server asked for 3 s); CLOSED means it gave up.
    setState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  });
  source.addEventListener("stream", (event) => {
    const data = JSON.parse(event.data);
    handle = data.stream;
    if (data.resumed_after) {
      prepend($("sse-log"), el("li", { class: "resume" }, `resumed after ${data.resumed_after}`));
    }
  });
  source.addEventListener("tick", (event) => {
    const n = Number(event.lastEventId);
    if (last !== null && n !== last + 1) missed += Math.max(0, n - last - 1);
    last = n;
    setText("sse-last", n);
    setText("sse-missed", missed);
    prepend($("sse-log"), el("li", { "data-n": n }, `tick ${n}`), 30);
  });
  $("sse-start").disabled = true;
  $("sse-drop").disabled = false;
  $("sse-stop").disabled = false;
}

function stop() {
  if (source) source.close();
  source = null;
  handle = null;
  last = null;
  setState("closed");
  $("sse-start").disabled = false;
  $("sse-drop").disabled = true;
  $("sse-stop").disabled = true;
}

async function drop() {
  if (!handle) return;
  const answer = await call("POST", `/api/v1/sse/stream/${encodeURIComponent(handle)}/drop`);
  handle = null;
  if (answer.status !== 204) {
    prepend($("sse-log"), el("li", {}, `drop refused: ${describe(answer)}`));
  } else {
    prepend($("sse-log"), el("li", { class: "drop" }, "server ended the stream"));
  }
}

export function init() {
  $("sse-start").addEventListener("click", start);
  $("sse-stop").addEventListener("click", stop);
  $("sse-drop").addEventListener("click", drop);
}
