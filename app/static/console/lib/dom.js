// Small DOM helpers: build elements without innerHTML (server data is never parsed as HTML).

/** `el("li", {class: "x"}, "text", child)`: an element with attributes and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

/** Add `item` at the top of a log list, keeping at most `limit` entries. */
export function prepend(list, item, limit = 50) {
  list.prepend(item);
  while (list.children.length > limit) list.lastElementChild.remove();
}

export function setText(id, text) {
  $(id).textContent = text;
}

/** A status shown by word and symbol, never by colour alone. */
export function light(name, ok, detail = "") {
  const word = ok === null ? "unknown" : ok ? "ok" : "fail";
  const symbol = ok === null ? "?" : ok ? "✓" : "✗";
  return el(
    "span",
    { class: `light ${word}`, "data-probe": name, title: detail || word },
    el("span", { "aria-hidden": "true" }, symbol),
    ` ${name}: ${word}`,
  );
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
