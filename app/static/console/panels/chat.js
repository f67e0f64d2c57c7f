// Step 5: two chat members side by side, each on its own WebSocket.
import { $, el, prepend } from "../lib/dom.js";

const room = `console-${Math.random().toString(36).slice(2, 8)}`;
// Close codes the chat uses, by number: what a learner should read from each.
const CODES = {
  1000: "normal closure",
  1001: "going away (server shutting down)",
  1003: "unsupported data",
  1008: "policy violation",
  1009: "message too big",
  1012: "service restart: reconnect",
  1013: "try again later",
};

function member(name, other) {
  let socket = null;
  const log = el("ol", { class: "log", "aria-label": `${name}'s messages`, "data-log": name });
  const status = el("output", { "data-status": name }, "offline");
  const text = el("input", { "aria-label": `${name}'s message`, maxlength: 2000, value: `hello from ${name}` });
  const direct = el("input", { type: "checkbox", "aria-label": `Send only to ${other}` });
  const show = (line, kind = "") => prepend(log, el("li", { class: kind }, line), 40);
  const send = (frame) => socket && socket.readyState === WebSocket.OPEN && socket.send(frame);

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws/chat?room=${room}&name=${name}`);
    status.value = "connecting";
    socket.addEventListener("open", () => (status.value = "online"));
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "message") show(`${frame.from}: ${frame.text}`);
      else if (frame.type === "direct") show(`${frame.from} → ${frame.to}: ${frame.text}`, "direct");
      else if (frame.type === "system" && (frame.event === "join" || frame.event === "leave")) {
        show(`${frame.name} ${frame.event === "join" ? "joined" : "left"}`, "meta");
      }
      else show(`${frame.type}: ${frame.detail || JSON.stringify(frame)}`, "meta");
    });
    socket.addEventListener("close", (event) => {
      status.value = "offline";
      const meaning = CODES[event.code] || "closed";
      show(`closed ${event.code} (${meaning})${event.reason ? `: ${event.reason}` : ""}`, "close");
    });
  };

  const pane = el(
    "div",
    { class: "member", "data-member": name },
    el("h3", {}, `Member ${name}: `, status),
    el(
      "div",
      { class: "controls" },
      el("button", { type: "button", onclick: connect }, "Connect"),
      el("button", { type: "button", onclick: () => socket && socket.close(1000) }, "Leave"),
    ),
    el(
      "form",
      {
        class: "controls",
        onsubmit: (event) => {
          event.preventDefault();
          const frame = direct.checked
            ? { type: "direct", to: other, text: text.value }
            : { type: "message", text: text.value };
          send(JSON.stringify(frame));
        },
      },
      el("label", {}, "Message ", text),
      el("label", {}, direct, ` only to ${other}`),
      el("button", { type: "submit" }, "Send"),
    ),
    el(
      "div",
      { class: "controls" },
      el("button", { type: "button", onclick: () => send("x".repeat(70000)) }, "Send a frame too large"),
      el(
        "button",
        {
          type: "button",
          onclick: () => {
            for (let i = 0; i < 40; i++) send(JSON.stringify({ type: "message", text: `fast ${i}` }));
          },
        },
        "Send too fast",
      ),
    ),
    log,
  );
  return pane;
}

export function init() {
  $("chat-members").append(member("ann", "bob"), member("bob", "ann"));
}
