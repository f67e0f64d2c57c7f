// The console's entry point: read the resilience settings once, start every panel, then the
// shared /metrics poller that several panels draw from.
import { call } from "./lib/api.js";
import * as metrics from "./lib/metrics.js";
import * as breakers from "./panels/breakers.js";
import * as bus from "./panels/bus.js";
import * as cache from "./panels/cache.js";
import * as chat from "./panels/chat.js";
import * as crud from "./panels/crud.js";
import * as dependencies from "./panels/dependencies.js";
import * as cpu from "./panels/cpu.js";
import * as probes from "./panels/probes.js";
import * as rateLimit from "./panels/ratelimit.js";
import * as sse from "./panels/sse.js";
import * as timeout from "./panels/timeout.js";

const answer = await call("GET", "/api/v1/resilience");
const resilience = answer.ok ? answer.body : null;
for (const panel of [rateLimit, timeout, dependencies, sse, chat, bus, cpu, cache, crud, probes]) panel.init(resilience);
breakers.init(resilience);
metrics.start(2000);
document.body.dataset.ready = "true";
