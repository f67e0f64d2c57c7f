"""CPU scoring, split at the process boundary: `worker` runs in the pool's processes (no web
stack), `service` runs in the web process (admission, jobs, progress events)."""
