"""Several worker processes on one port (`APP_WORKERS` above 1, with `APP_STORE=redis`).

The supervisor (this process) binds the port once and starts each worker as a fresh
interpreter (`spawn`) that builds the app and serves on the shared socket; the kernel hands each
new connection to one of them. It restarts a worker that dies, and on SIGTERM or SIGINT passes
the signal on once, so every worker drains as a single process would (readiness off, streams
ended, then uvicorn's graceful shutdown), and waits for them.

Metrics: before any worker starts, `PROMETHEUS_MULTIPROC_DIR` is set (to a fresh temporary
directory unless it is set already, and emptied either way), so prometheus-client runs in its
multiprocess mode and `/metrics` in any worker merges every worker's: counters and histograms
summed, each gauge as it declares (`multiprocess_mode`). A worker that dies is marked dead, so
its live gauges stop counting. Only the first worker serves `APP_PROBE_PORT`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from app.core.config import Settings, get_settings
from app.core.logging import configure_logging, get_logger
from app.core.metrics import MULTIPROC_ENV

if TYPE_CHECKING:
    from app.__main__ import AppFactory

log = get_logger("app.workers")

# uvicorn's exit status when the app fails to start.
STARTUP_FAILURE = 3


def prepare_metrics_directory() -> tuple[Path, bool]:
    """The multiprocess metrics directory, emptied and exported to the workers' environment;
    and whether it was made here (then it is removed at the end)."""
    given = os.environ.get(MULTIPROC_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="resilient-api-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    # Files left by an earlier run would be merged into this one's counters.
    for leftover in directory.glob("*.db"):
        leftover.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory, not given


def bind(host: str, port: int) -> socket.socket:
    """The listening address, bound once for every worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _exit_with_parent(parent: int) -> None:
    # A worker whose supervisor is gone (killed outright) stops too, as a drained worker
    # would, instead of holding the port with nobody to restart or stop it.
    while os.getppid() == parent:
        time.sleep(1.0)  # blocking-ok: a daemon thread of its own, never the event loop
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    index: int, sock: socket.socket, factory: AppFactory | None, parent: int, started: Event
) -> None:
    # The worker's own process: its own signal handling (uvicorn's), its own app.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgrp()  # Ctrl+C reaches the supervisor alone, which passes it on once
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    from app.__main__ import build_server, default_factory

    server = build_server(
        get_settings(), factory or default_factory, probes=index == 0, on_started=started.set
    )
    server.run(sockets=[sock])


@dataclass
class _Worker:
    index: int
    process: SpawnProcess
    started: Event  # set once the worker serves: a worker that dies before cannot start


class WorkerSupervisor:
    """Runs `settings.workers` workers on one port until told to stop (see the module).
    `factory` builds each worker's app (None: the app's own); it is sent to the workers, so it
    must be importable by name from a module other than `__main__`."""

    def __init__(self, settings: Settings, factory: AppFactory | None = None) -> None:
        self.settings = settings
        self.factory = factory
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._signal: int | None = None
        self._wake = threading.Event()
        self._sock: socket.socket | None = None

    def _start(self, index: int) -> _Worker:
        started = self._context.Event()
        process = self._context.Process(
            target=_worker_main,
            args=(index, self._sock, self.factory, os.getpid(), started),
            name=f"resilient-api-worker-{index}",
        )
        process.start()
        log.info("worker_started", worker=index, pid=process.pid)
        return _Worker(index, process, started)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._signal is None:
            self._signal = sig
        self._wake.set()

    def run(self) -> int:
        """Start the workers, keep them running, stop them on a signal; the exit status."""
        configure_logging(self.settings.log_level, self.settings.effective_log_format)
        directory, made_here = prepare_metrics_directory()
        self._sock = bind(self.settings.host, self.settings.port)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info(
            "workers_starting",
            workers=self.settings.workers,
            address=f"{self.settings.host}:{self.settings.port}",
            metrics_directory=str(directory),
        )
        status = 0
        try:
            self._workers = [self._start(index) for index in range(self.settings.workers)]
            status = self._supervise()
        finally:
            self._stop()
            self._sock.close()
            if made_here:
                shutil.rmtree(directory, ignore_errors=True)
        return status

    def _supervise(self) -> int:
        while self._signal is None:
            self._wake.wait(0.5)
            for slot, worker in enumerate(self._workers):
                if worker.process.is_alive() or self._signal is not None:
                    continue
                self._mark_dead(worker)
                code = worker.process.exitcode
                if not worker.started.is_set():
                    # It could not start (a setting, a dependency that refuses it): starting
                    # it again would only loop. Stop, and let the supervisor's own supervisor
                    # (Kubernetes, say) restart the whole with its backoff.
                    log.error("worker_failed_to_start", worker=worker.index, exit_code=code)
                    return STARTUP_FAILURE
                log.error(
                    "worker_died", worker=worker.index, pid=worker.process.pid, exit_code=code
                )
                self._workers[slot] = self._start(worker.index)
        return 0

    def _stop(self) -> None:
        sig = self._signal or signal.SIGTERM
        for worker in self._workers:
            if worker.process.is_alive() and worker.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, sig)
        # As long as one worker's drain and graceful shutdown may take, and a little more.
        deadline = time.monotonic() + (
            self.settings.shutdown_drain_seconds + self.settings.graceful_shutdown_seconds + 5
        )
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("worker_killed", worker=worker.index, pid=worker.process.pid)
                worker.process.kill()
                worker.process.join(5)
            self._mark_dead(worker)
        log.info("workers_stopped")

    @staticmethod
    def _mark_dead(worker: _Worker) -> None:
        if worker.process.pid is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(worker.process.pid)  # type: ignore[no-untyped-call]
