"""Property-based fuzzing of every operation in the running app's own OpenAPI schema.

Schemathesis (its CLI, on a real server) generates requests from the schema, valid and invalid,
in every phase (examples, coverage, fuzzing, stateful) and checks each answer with the four
checks the contract cares about (tests/contract/schemathesis.toml): no server error, a documented
status code, the documented content type, and a body matching the documented schema.
"""

from __future__ import annotations

import os
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
# Fixed so that CI is reproducible; FUZZ_SEED=random (or a number) explores elsewhere.
SEED = os.environ.get("FUZZ_SEED", "20261122")
# `make fuzz` asks for more.
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "15")


# A short timeout keeps the slow demos quick to fuzz; rate limiting stays off (the default
# test setting) so that 1,000+ requests from one client are all answered.
SERVER_ENV = {"APP_REQUEST_TIMEOUT_SECONDS": "2"}


def test_every_operation_conforms_to_the_openapi_schema(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = httpx.post(
        f"{live_server.base_url}/api/v1/auth/token",
        data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
    ).json()["access_token"]
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "run", f"{live_server.base_url}/openapi.json",
        "--max-examples", EXAMPLES,
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
    if SEED != "random":
        command += ["--seed", SEED]
    # Run where schemathesis may leave its example cache (.schemathesis/) without touching the
    # repository.
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    # Every operation but the three streams, logout, the readiness drain, fault injection and
    # the kill-a-worker drill
    # (the console's two lab routes included).
    assert "Tested: 34" in result.stdout, report
    assert "failures" not in result.stdout.splitlines()[-1], report
