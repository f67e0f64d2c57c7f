"""The server wrapper's own behaviour, in process: what `python -m app` does around uvicorn."""

from __future__ import annotations

import gc

import uvicorn
from starlette.types import Receive, Scope, Send

from app.__main__ import YOUNG_GC_THRESHOLD, DrainingServer
from app.core.lifecycle import Lifecycle


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def test_startup_freezes_what_it_built_and_collects_the_young_less_often() -> None:
    # Frozen objects are left out of every later collection: the full collections that walked
    # the whole start-up heap were the latency tail under load (docs/benchmarks.md).
    gc.unfreeze()
    thresholds = gc.get_threshold()
    config = uvicorn.Config(_app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    config.load()
    server = DrainingServer(config, Lifecycle(), drain_seconds=0)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup()
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *thresholds[1:])
        assert server.started
    finally:
        await server.shutdown()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
