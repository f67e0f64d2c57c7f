"""Property-based fuzzing of every operation in the running app's own OpenAPI schema.

Schemathesis (its CLI, on a real server) generates requests from the schema, valid and invalid,
in every phase (examples, coverage, fuzzing, stateful) and checks each answer with the four
checks the contract cares about (tests/contract/schemathesis.toml): no server error, a documented
status code, the documented content type, and a body matching the documented schema.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Streams are exercised with real SSE/NDJSON clients in tests/e2e/test_realtime.py; a generated
# request may open one that never ends (no count), which a request/response fuzzer cannot read.
# The endless streams are tested with real stream clients; logging out would revoke the token
# the fuzzer authenticates with (tests/security proves logout).
EXCLUDED = r"^/api/v1/(events/stream|sse/stream|stream/numbers|auth/logout)$"
# The demos that wait as long as they are asked (or until the server's 2 s timeout) spend the
# run sleeping: each is fuzzed by a run of its own, at the same time as the others and as the
# run of every other operation (which keeps the stateful phase's links whole).
SLOW = ("async-demo", "demo/slow", "blocking-demo")
GROUPS = [f"^/api/v1/{path}$" for path in SLOW] + [None]
# Fixed so that CI is reproducible; FUZZ_SEED=random (or a number) explores elsewhere.
SEED = os.environ.get("FUZZ_SEED", "20261122")
# `make fuzz` asks for more, for every operation (schemathesis.toml sets the default).
EXAMPLES = os.environ.get("FUZZ_EXAMPLES")


# A short timeout keeps the slow demos quick to fuzz; rate limiting stays off (the default
# test setting) so that 1,000+ requests from one client are all answered. The scoring worker
# starts with the server: a first task importing numpy could outlast the 2 s timeout.
SERVER_ENV = {"APP_REQUEST_TIMEOUT_SECONDS": "2", "APP_PROCESS_POOL_WARM_UP": "true"}


def _command(base_url: str, token: str, only: str | None) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "run", f"{base_url}/openapi.json",
        "--exclude-path-regex", EXCLUDED,
        # Draining readiness turns /ready to 503 for the rest of the run (tested on its own in
        # tests/api/routes/test_console.py, tests/browser and the tour).
        "--exclude-operation-id", "admin-set_readiness",
        # Likewise an injected store outage (tested in tests/api/routes/test_faults.py).
        "--exclude-operation-id", "admin-inject_fault",
        # And a killed scoring worker (tests/e2e/test_scoring.py kills one on purpose).
        "--exclude-operation-id", "admin-kill_scoring_worker",
        "--header", f"Authorization: Bearer {token}",
        "--no-color",
    ]  # fmt: skip
    if only is not None:
        command += ["--include-path-regex", only]
    else:
        for path in SLOW:
            command += ["--exclude-path", f"/api/v1/{path}"]
    if EXAMPLES is not None:
        command += ["--max-examples", EXAMPLES]
    if SEED != "random":
        command += ["--seed", SEED]
    return command


def test_every_operation_conforms_to_the_openapi_schema(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = httpx.post(
        f"{live_server.base_url}/api/v1/auth/token",
        data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
    ).json()["access_token"]
    runs = []
    for index, only in enumerate(GROUPS):
        # Each where it may leave its example cache (.schemathesis/) without touching the
        # repository.
        folder = tmp_path / f"run{index}"
        folder.mkdir()
        command = _command(live_server.base_url, token, only)
        runs.append(
            subprocess.Popen(
                command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    tested = 0
    for run in runs:
        stdout, stderr = run.communicate(timeout=900)
        report = stdout[-6000:] + stderr[-2000:]
        assert run.returncode == 0, report
        assert "failures" not in stdout.splitlines()[-1], report
        counted = re.search(r"Tested: (\d+)", stdout)
        assert counted is not None, report
        tested += int(counted.group(1))
    # Every operation but the three streams, logout, the readiness drain, fault injection and
    # the kill-a-worker drill (the console's two lab routes included).
    assert tested == 34
