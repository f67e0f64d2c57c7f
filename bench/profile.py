"""Where a `GET /api/v1/users/{id}` spends its CPU: py-spy on the running server under load.

Starts `python -m app` with the full chain (pinned to CPU 0; the rate limiter's quota raised so
it never refuses), drives it with wrk (64 connections, CPU 1), samples it with py-spy for
`--seconds`, and sums the samples by the component whose code was running (the leaf frame's
package): FastAPI, uvicorn and asyncio, Starlette, our middleware, logging, pydantic, metrics,
and our route/service/store code. The raw samples are kept (`--raw`) for a flame graph tool.

Usage: .venv/bin/python -m bench.profile [--seconds 10] [--raw build/profile.txt]
Needs wrk (Debian package) and py-spy (a development dependency; sampling another process
needs root or ptrace permission).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from bench._server import ROOT, running_server
from bench._wrk import wrk

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
ENV = {"APP_LOG_FORMAT": "json", "APP_LOG_LEVEL": "INFO", "APP_RATE_LIMIT_REQUESTS": "1000000000"}
PATH = "/api/v1/users/1"

# First match wins: a leaf frame's file (relative to site-packages or the repository).
COMPONENTS: list[tuple[str, Callable[[str], bool]]] = [
    ("FastAPI: routing, dependency resolution", lambda f: f.startswith("fastapi/")),
    (
        "uvicorn's HTTP protocol, the asyncio loop and transports",
        lambda f: f.startswith(("uvicorn/", "asyncio/", "selectors", "httptools")),
    ),
    (
        "Starlette: GZip, CORS, requests and responses",
        lambda f: f.startswith("starlette/"),
    ),
    (
        "our middleware layers",
        lambda f: (
            f.startswith("app/middleware/")
            or f in ("app/memory/rate_limiter.py", "app/http/clients.py", "app/core/breaker.py")
        ),
    ),
    (
        "logging: the access line",
        lambda f: f.startswith(("structlog/", "logging/")) or f == "app/core/logging.py",
    ),
    ("pydantic: the response model", lambda f: f.startswith("pydantic")),
    ("prometheus_client", lambda f: f.startswith("prometheus_client/")),
    (
        "the route, service, cache and repository",
        lambda f: f.startswith(("app/api/", "app/services/", "app/memory/")),
    ),
]
_FRAME = re.compile(r"(.*?) \((.*?):\d+\)$")


def _file(frame: str) -> str:
    found = _FRAME.match(frame)
    if found is None:
        return frame
    path = found.group(2).split("site-packages/")[-1]
    path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    return path.removeprefix(str(ROOT) + "/")


def summarise(raw: str) -> tuple[int, list[tuple[str, int]]]:
    """(total samples, samples per component, largest first) from py-spy's raw output."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, number = line.rsplit(" ", 1)
        samples = int(number)
        total += samples
        leaf = _file(stack.split(";")[-1])
        name = next((name for name, owns in COMPONENTS if owns(leaf)), "other")
        counts[name] += samples
    return total, counts.most_common()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--raw", type=Path, default=ROOT / "build" / "profile.txt")
    args = parser.parse_args()
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    with running_server("app", 8774, ENV, ready_path=PATH, cpu=0) as (process, base):
        load = threading.Thread(target=wrk, args=(base + PATH, args.seconds + 4, 64))
        load.start()
        command = [PY_SPY, "record", "--pid", str(process.pid), "--duration", str(args.seconds)]
        command += ["--rate", "500", "--format", "raw", "--nonblocking", "--output", str(args.raw)]
        subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - py-spy, our args
        load.join()
    total, components = summarise(args.raw.read_text())
    print(f"samples: {total} (raw stacks in {args.raw})")
    for name, samples in components:
        print(f"{100 * samples / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
