"""The lifespan: build and start the services, create the admin, turn ready; on the way out,
turn unready first, then close everything in reverse order."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.container import AppState, Foundation, build_services
from app.core.config import DEV_ADMIN_PASSWORD
from app.core.exceptions import StartupRefused
from app.core.logging import get_logger
from app.core.metrics import release_process_metrics
from app.core.tracing import EXPORT_TIMEOUT_SECONDS

log = get_logger(__name__)


def _reason(exc: BaseException) -> str:
    # Our own refusals explain themselves; anything else is named by its type as well.
    if isinstance(exc, StartupRefused):  # SnapshotError is one
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


async def _in_own_thread(work: Callable[[], object], *, within: float) -> bool:
    """Run blocking `work` in a new (daemon) thread and wait for it, without blocking the
    loop, for at most `within` seconds; whether it finished."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            work()
        finally:
            loop.call_soon_threadsafe(_settle, done)

    threading.Thread(target=run, name="lifespan-close", daemon=True).start()
    try:
        await asyncio.wait_for(done, within)
    except TimeoutError:
        return False
    return True


def several_workers() -> str | None:
    """How this process is one of several serving workers, or None: a process started by a
    supervisor's `multiprocessing` (`uvicorn --workers N`), or `WEB_CONCURRENCY` above 1 (what
    uvicorn and gunicorn read for their worker count)."""
    concurrency = os.environ.get("WEB_CONCURRENCY", "").strip()
    if concurrency.isdigit() and int(concurrency) > 1:
        return f"WEB_CONCURRENCY={concurrency}"
    if multiprocessing.parent_process() is not None:
        return "a worker process started by a supervisor (uvicorn --workers, say)"
    return None


def lifespan(foundation: Foundation) -> Callable[[FastAPI], AbstractAsyncContextManager[AppState]]:
    """The app's lifespan over `foundation`: its state is the services, which requests read
    through `app/api/deps.py`."""

    @asynccontextmanager
    async def run(_: FastAPI) -> AsyncIterator[AppState]:
        settings = foundation.settings
        if settings.store == "memory" and (workers := several_workers()) is not None:
            reason = (
                f"APP_STORE=memory keeps the data in this process, and this is {workers}: "
                "each worker would serve a dataset of its own. Run one worker (python -m app), "
                "or share the data with APP_STORE=redis"
            )
            log.error("startup_failed", reason=reason)
            raise StartupRefused(reason)
        services = build_services(foundation)
        try:
            await services.start()
        except Exception as exc:
            # Stop whatever did start (worker processes, tasks) before the process exits.
            log.error("startup_failed", reason=_reason(exc))
            await services.close()
            raise
        try:
            # Safe to repeat: a create that timed out but ran is found by the next try.
            admin = await services.store_wait.call(
                "the admin account",
                lambda: services.users.ensure_admin(
                    email=settings.admin_email,
                    password=settings.admin_password,
                    reset_password=settings.admin_reset_password,
                    # Production must not run with an admin anyone can look up in this repository.
                    forbidden_password=DEV_ADMIN_PASSWORD if settings.env == "production" else None,
                ),
            )
            foundation.lifecycle.mark_started()
            log.info(
                "startup_complete",
                env=settings.env,
                version=__version__,
                admin_id=admin.id,
                # Where a learner finds the console (and the API), said once at start.
                console=f"http://{settings.host}:{settings.port}/",
            )
            yield {"services": services}
        except StartupRefused as exc:
            log.error("startup_failed", reason=_reason(exc))
            raise
        finally:
            foundation.lifecycle.begin_shutdown()
            await services.close()
            if foundation.tracer_provider is not None:
                # The spans still queued, the closing's own included: from a thread of its own
                # (the default executor is closed by now), waited for at most the export
                # timeout; a collector that is down must not hold the exit up.
                flushed = await _in_own_thread(
                    foundation.tracer_provider.shutdown, within=EXPORT_TIMEOUT_SECONDS
                )
                if not flushed:
                    log.warning("trace_export_abandoned", after_seconds=EXPORT_TIMEOUT_SECONDS)
            release_process_metrics()
            log.info("shutdown_complete")

    return run
