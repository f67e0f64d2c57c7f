// Reads /metrics (Prometheus text format) every few seconds and hands each scrape to the
// panels that draw from it. One poller for the whole page: /metrics is not rate-limited, and
// one scrape serves every panel.

const subscribers = new Set();
let previous = null;

/** Parse the text format into {name: [{labels, value}]}; comments and blank lines skipped. */
export function parse(text) {
  const series = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    (series[match[1]] ||= []).push({ labels, value: Number(match[4]) });
  }
  return series;
}

/** The sum of every series of `name` whose labels include `match`. */
export function total(scrape, name, match = {}) {
  return (scrape[name] || [])
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** The q-quantile of a histogram's increase between two scrapes (as histogram_quantile). */
export function quantile(q, before, after, name) {
  const buckets = new Map();
  for (const s of after[`${name}_bucket`] || []) {
    const le = s.labels.le;
    buckets.set(le, (buckets.get(le) || 0) + s.value);
  }
  for (const s of before[`${name}_bucket`] || []) {
    const le = s.labels.le;
    buckets.set(le, (buckets.get(le) || 0) - s.value);
  }
  const sorted = [...buckets.entries()]
    .map(([le, count]) => [le === "+Inf" ? Infinity : Number(le), count])
    .sort((a, b) => a[0] - b[0]);
  const count = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (count <= 0) return null;
  const rank = q * count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, cumulative] of sorted) {
    if (cumulative >= rank) {
      if (bound === Infinity) return lowerBound;
      const inBucket = cumulative - lowerCount;
      return lowerBound + (bound - lowerBound) * (inBucket ? (rank - lowerCount) / inBucket : 0);
    }
    lowerBound = bound;
    lowerCount = cumulative;
  }
  return lowerBound;
}

/** Call `callback(scrape, previousScrape, seconds)` after each scrape. */
export function onScrape(callback) {
  subscribers.add(callback);
}

async function scrape() {
  try {
    const response = await fetch("/metrics", { headers: { Accept: "text/plain" } });
    if (!response.ok) return;
    const now = { at: performance.now(), data: parse(await response.text()) };
    const seconds = previous ? (now.at - previous.at) / 1000 : 0;
    for (const callback of subscribers) callback(now.data, previous && previous.data, seconds);
    previous = now;
  } catch {
    // The server is restarting or gone: the probe lights say so; try again next round.
  }
}

/** Start polling every `intervalMs`. */
export function start(intervalMs = 2000) {
  scrape();
  setInterval(scrape, intervalMs);
}
