"""What every CPU worker process runs before its first task, and nothing more.

A worker is a fresh interpreter (`spawn`) that imports only the modules of the functions it is
handed: this initializer's module must stay this small, or each worker would load the web
process's logging, metrics and tracing for nothing (`tests/services/test_process_pool.py`
checks what a worker holds).
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent() -> None:
    """Worker initializer: exit as soon as the process that started this one is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)  # blocking-ok: a thread of the worker process, not the event loop
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
