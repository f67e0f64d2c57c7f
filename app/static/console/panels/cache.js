// Step 8: read and rename a user of its own, and watch the users cache's hits and misses.
import { call, describe, signIn, tokens } from "../lib/api.js";
import { $, setText } from "../lib/dom.js";
import { onScrape, total } from "../lib/metrics.js";

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

async function read() {
  const answer = await call("GET", `/api/v1/users/${user.id}`);
  setText(
    "cache-result",
    answer.ok ? `Read "${answer.body.name}" (ETag ${answer.headers.get("ETag")}).` : describe(answer),
  );
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
