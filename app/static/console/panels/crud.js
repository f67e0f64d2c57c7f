// Step 9: CRUD done carefully. Each button runs a short exchange with the users API and prints
// it raw (request line, status, the headers that carry the behaviour, the body), then says in
// one sentence what it shows. The panel keeps an account of its own, so it never touches the
// cache step's user.
import { call, describe, signIn } from "../lib/api.js";
import { $, el, setText } from "../lib/dom.js";

const REASONS = {
  200: "OK",
  201: "Created",
  204: "No Content",
  304: "Not Modified",
  401: "Unauthorized",
  409: "Conflict",
  412: "Precondition Failed",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  503: "Service Unavailable",
};
// The response headers that carry what each exchange teaches.
const SHOWN = ["Content-Type", "Location", "ETag", "Idempotent-Replayed", "WWW-Authenticate", "Retry-After"];

let account = null; // {email, password, id, token}
let lines = [];

function randomPassword() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes));
}

/** Send a request and add it, as a client would see it on the wire, to the transcript. */
async function exchange(method, path, { json, token, headers = {} } = {}) {
  const answer = await call(method, path, { json, token, headers });
  lines.push(`> ${method} ${path}`);
  for (const [name, value] of Object.entries(headers)) lines.push(`> ${name}: ${value}`);
  if (token) lines.push("> Authorization: Bearer …");
  if (json !== undefined) lines.push(`> ${JSON.stringify(json)}`);
  lines.push(`< ${answer.status} ${REASONS[answer.status] || ""}`.trimEnd());
  for (const name of SHOWN) {
    const value = answer.headers.get(name);
    if (value) lines.push(`< ${name}: ${value}`);
  }
  if (answer.body !== null) {
    lines.push(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body, null, 2));
  }
  lines.push("");
  $("crud-out").textContent = lines.join("\n");
  return answer;
}

function verdict(step, ok, text) {
  const out = $("crud-verdict");
  out.textContent = text;
  out.dataset.step = step;
  out.dataset.ok = String(ok);
}

function newUser() {
  const email = `careful-${crypto.randomUUID().slice(0, 8)}@example.com`;
  return { email, name: "Careful Learner", password: randomPassword() };
}

/** The panel's own account, created and signed in on first use. */
async function ensureAccount() {
  if (account) return account;
  const fields = newUser();
  const answer = await exchange("POST", "/api/v1/users", { json: fields });
  if (answer.status !== 201) throw new Error(`could not create a user: ${describe(answer)}`);
  account = { ...fields, id: answer.body.id, token: await signIn(fields.email, fields.password) };
  return account;
}

async function idempotency() {
  const fields = newUser();
  const key = `"console-${crypto.randomUUID()}"`;
  const first = await exchange("POST", "/api/v1/users", { json: fields, headers: { "Idempotency-Key": key } });
  const again = await exchange("POST", "/api/v1/users", { json: fields, headers: { "Idempotency-Key": key } });
  const bare = await exchange("POST", "/api/v1/users", { json: fields });
  const same = first.status === 201 && again.status === 201 && first.body.id === again.body.id;
  verdict(
    "idempotency",
    same && again.headers.get("Idempotent-Replayed") === "true" && bare.status === 409,
    same
      ? `The repeat with the same key replayed the first 201 (user ${first.body.id}, ` +
          `Idempotent-Replayed: true): one user, however often a client retries. Without the key ` +
          `the same request is a new attempt, refused ${bare.status}: the email is taken.`
      : `Unexpected: ${describe(first)}, then ${describe(again)}.`,
  );
}

async function conditionalRead() {
  const { id } = await ensureAccount();
  const read = await exchange("GET", `/api/v1/users/${id}`);
  const tag = read.headers.get("ETag");
  const again = await exchange("GET", `/api/v1/users/${id}`, { headers: { "If-None-Match": tag } });
  verdict(
    "etag",
    read.status === 200 && again.status === 304,
    again.status === 304
      ? `304 Not Modified, no body: the copy tagged ${tag} is still current, so the client ` +
          "keeps it and the server sends nothing again."
      : `Unexpected: ${describe(again)}.`,
  );
}

async function lostUpdate() {
  const { id, token } = await ensureAccount();
  const read = await exchange("GET", `/api/v1/users/${id}`);
  const tag = read.headers.get("ETag");
  // Two editors both read version `tag`; the first to write wins, the second is told.
  const first = await exchange("PATCH", `/api/v1/users/${id}`, {
    json: { name: "Edited by the first tab" },
    token,
    headers: { "If-Match": tag },
  });
  const second = await exchange("PATCH", `/api/v1/users/${id}`, {
    json: { name: "Edited by the second tab" },
    token,
    headers: { "If-Match": tag },
  });
  verdict(
    "lost-update",
    first.status === 200 && second.status === 412,
    second.status === 412
      ? `412 Precondition Failed: the second edit was made from ${tag}, which is no longer ` +
          `current (now ${first.headers.get("ETag")}), so it changed nothing; without If-Match it ` +
          "would have overwritten the first edit unseen."
      : `Unexpected: ${describe(first)}, then ${describe(second)}.`,
  );
}

async function problemDetails() {
  const answer = await exchange("POST", "/api/v1/users", {
    json: { email: "not-an-email", name: "", password: "short" },
  });
  const type = answer.headers.get("Content-Type") || "";
  verdict(
    "problem",
    answer.status === 422 && type.startsWith("application/problem+json"),
    `${answer.status} as application/problem+json (RFC 9457): a type to branch on, a title, ` +
      "a detail for people, the request id to quote, and one entry per invalid field. " +
      "Nothing was created.",
  );
}

async function revokedToken() {
  const { email, password } = await ensureAccount();
  const token = await signIn(email, password);
  const before = await exchange("GET", "/api/v1/auth/me", { token });
  const logout = await exchange("POST", "/api/v1/auth/logout", { token });
  const after = await exchange("GET", "/api/v1/auth/me", { token });
  verdict(
    "revoked",
    before.status === 200 && logout.status === 204 && after.status === 401,
    after.status === 401
      ? "401 after logout: the token has not expired, but its id is on the revocation list, " +
          "so it is refused everywhere it is presented."
      : `Unexpected: ${describe(after)}.`,
  );
}

function action(run) {
  return async (event) => {
    const buttons = [...$("crud").querySelectorAll("button")];
    for (const button of buttons) button.disabled = true;
    lines = [];
    $("crud-out").textContent = "";
    verdict(event.target.dataset.action, false, "Running…");
    try {
      await run();
    } catch (error) {
      verdict(event.target.dataset.action, false, `Stopped: ${error.message}`);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  };
}

export function init() {
  const actions = [
    ["idempotency", "Create twice with one Idempotency-Key", idempotency],
    ["etag", "Read, then read again with If-None-Match", conditionalRead],
    ["lost-update", "Two edits from one version (If-Match)", lostUpdate],
    ["problem", "Send an invalid user", problemDetails],
    ["revoked", "Log out, then use the token again", revokedToken],
  ];
  $("crud-actions").replaceChildren(
    ...actions.map(([name, label, run]) =>
      el("button", { type: "button", "data-action": name, onclick: action(run) }, label),
    ),
  );
  setText("crud-verdict", "Pick an exchange above.");
}
