// Read a server-sent event stream with fetch, for streams whose event names are not known in
// advance (a bus pattern matches any topic, and EventSource only dispatches names it was told).
// Parsing follows the WHATWG rules: fields per line, a blank line ends an event.

/**
 * Follow `url`, calling `onEvent({event, data, id})` for each event, until `signal` aborts.
 * Resolves when the stream ends; rejects with the answer's status when it is not a stream.
 */
export async function follow(url, onEvent, signal) {
  const response = await fetch(url, { headers: { Accept: "text/event-stream" }, signal });
  if (!response.ok) throw new Error(`${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) onEvent({ ...event, data: event.data.join("\n") });
        event = { event: "message", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue; // a heartbeat comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(text);
      else if (field === "event") event.event = text;
      else if (field === "id") event.id = text;
    }
  }
}
