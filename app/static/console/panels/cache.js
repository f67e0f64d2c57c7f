// Step 8: read and rename a user of its own, and watch the users cache's hits and misses.
import { call, describe, signIn, tokens } from "../lib/api.js";
import { $, el, prepend, setText } from "../lib/dom.js";
import { onScrape, parse, total } from "../lib/metrics.js";

let user = null;

function randomPassword() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes));
}

async function create() {
  $("cache-user").disabled = true;
  const email = `learner-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const password = randomPassword();
  const answer = await call("POST", "/api/v1/users", {
    json: { email, name: "Console Learner", password },
  });
  if (!answer.ok) {
    setText("cache-result", `Could not create the user: ${describe(answer)}`);
    $("cache-user").disabled = false;
    return;
  }
  user = answer.body;
  try {
    tokens.user = await signIn(email, password);
  } catch (error) {
    setText("cache-result", `Created ${email}, but signing in failed: ${error.message}`);
    return;
  }
  setText("cache-result", `Signed in as ${email} (user ${user.id}).`);
  $("cache-read").disabled = false;
  $("cache-write").disabled = false;
}

/** The users cache's counters, read from /metrics. */
async function counters() {
  const response = await fetch("/metrics", { headers: { Accept: "text/plain" } });
  const scrape = parse(await response.text());
  return {
    hits: total(scrape, "cache_hits_total", { cache: "users" }),
    misses: total(scrape, "cache_misses_total", { cache: "users" }),
  };
}

let reads = 0;

async function read() {
  // The counters before and after this one read say what it was; another client reading
  // users at the same moment would blur it, and then the log says so rather than guess.
  const before = await counters();
  const answer = await call("GET", `/api/v1/users/${user.id}`);
  const after = await counters();
  setText(
    "cache-result",
    answer.ok ? `Read "${answer.body.name}" (ETag ${answer.headers.get("ETag")}).` : describe(answer),
  );
  if (!answer.ok) return;
  const hits = after.hits - before.hits;
  const misses = after.misses - before.misses;
  const outcome = hits === 1 && misses === 0 ? "hit" : misses === 1 && hits === 0 ? "miss" : "unclear";
  const words = {
    hit: "hit: answered from memory",
    miss: "miss: loaded from the store, now cached",
    unclear: "unclear: other reads happened at the same time",
  };
  reads++;
  prepend($("cache-log"), el("li", { "data-outcome": outcome }, `read ${reads}: ${words[outcome]}`), 20);
}

async function rename() {
  const name = `Learner ${new Date().toLocaleTimeString()}`;
  const answer = await call("PATCH", `/api/v1/users/${user.id}`, {
    json: { name },
    token: tokens.user,
  });
  setText(
    "cache-result",
    answer.ok ? `Renamed to "${answer.body.name}": the cached copy was invalidated.` : describe(answer),
  );
  if (answer.ok) prepend($("cache-log"), el("li", { class: "meta" }, "renamed: the cached copy was dropped"), 20);
}

export function init() {
  $("cache-user").addEventListener("click", create);
  $("cache-read").addEventListener("click", read);
  $("cache-write").addEventListener("click", rename);
  onScrape((scrape) => {
    setText("cache-hits", total(scrape, "cache_hits_total", { cache: "users" }));
    setText("cache-misses", total(scrape, "cache_misses_total", { cache: "users" }));
    setText("cache-entries", total(scrape, "cache_entries", { cache: "users" }));
  });
}
