// HTTP helpers for the console: one place that sends requests, reads problem+json answers and
// keeps the quota the server last reported, so the rate-limit panel can draw it whatever sent
// the request.

const listeners = new Set();

/** Call `listener({remaining, reset, limit, status, retryAfter})` after every API answer. */
export function onQuota(listener) {
  listeners.add(listener);
}

/** Parse the IETF `RateLimit` / `RateLimit-Policy` fields: `"default";r=95;t=37`. */
export function parseRateLimit(value) {
  const out = {};
  for (const part of (value || "").split(";").slice(1)) {
    const [key, number] = part.split("=");
    out[key.trim()] = Number(number);
  }
  return out;
}

function reportQuota(response) {
  const fields = response.headers.get("RateLimit");
  if (!fields) return;
  const quota = parseRateLimit(fields);
  const policy = parseRateLimit(response.headers.get("RateLimit-Policy"));
  const state = {
    remaining: quota.r,
    reset: quota.t,
    limit: policy.q,
    status: response.status,
    retryAfter: Number(response.headers.get("Retry-After") || 0),
  };
  for (const listener of listeners) listener(state);
}

// Which replica answered the last call (`X-Served-By`, sent because every call asks with
// `Prefer: served-by`): shown in the page's header, so behind a load balancer a learner sees
// the answers come from one replica, then another.
function reportServedBy(response) {
  const member = response.headers.get("X-Served-By");
  const shown = document.getElementById("served-by");
  if (member && shown) {
    shown.textContent = `Last answer from ${member}`;
    shown.dataset.member = member;
  }
}

/** The bearer token of whoever the console signed in as, by role. */
export const tokens = { user: null, admin: null };

/**
 * Send a request; resolve to {status, ok, body, headers, ms} whatever the status
 * (a network failure resolves with status 0 and the error's message).
 */
export async function call(method, path, { json, form, token, headers = {}, signal, cache } = {}) {
  const init = {
    method,
    headers: { Accept: "application/json", Prefer: "served-by", ...headers },
    signal,
  };
  // "no-store": the browser's HTTP cache would otherwise revalidate with the ETag and hand
  // back its stored copy, with the headers of the answer it stored.
  if (cache) init.cache = cache;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = new URLSearchParams(form);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  const started = performance.now();
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return { status: 0, ok: false, body: { detail: String(error) }, headers: new Headers(), ms: 0 };
  }
  reportQuota(response);
  reportServedBy(response);
  const type = response.headers.get("Content-Type") || "";
  const text = await response.text();
  let body = text || null;
  if (text && type.includes("json")) body = JSON.parse(text);
  const ms = Math.round(performance.now() - started);
  return { status: response.status, ok: response.ok, body, headers: response.headers, ms };
}

/** A one-line description of an answer: `200 OK` or `503 circuit open: <detail>`. */
export function describe(answer) {
  if (answer.status === 0) return `network error: ${answer.body.detail}`;
  const detail = answer.body && typeof answer.body === "object" ? answer.body.detail : "";
  return detail ? `${answer.status}: ${detail}` : `${answer.status}`;
}

/** Sign in with the password grant; resolves to the token or throws with the server's detail. */
export async function signIn(email, password) {
  const answer = await call("POST", "/api/v1/auth/token", {
    form: { username: email, password },
  });
  if (!answer.ok) throw new Error(describe(answer));
  return answer.body.access_token;
}
