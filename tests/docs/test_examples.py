"""Every documented example runs as written: the `bash` blocks of the README and the tour,
in order, against a fresh real server.

The convention the docs follow: a fenced block marked `bash` is runnable, in one shell session
per document (variables carry over); `sh` and `text` blocks are instructions and output that
are not run. A line `# => text` says that the commands since the previous such line print
`text`; each step must also exit 0 (or 28, curl's time-out, where it asks for `--max-time`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.live_server import ADMIN_PASSWORD, ROOT, LiveServer, free_ports, start_server

DOCUMENTS = ("README.md", "docs/tour.md")
_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
_EXPECT = "# => "


def _steps(markdown: str) -> list[tuple[str, list[str]]]:
    """(commands, expected substrings) in document order."""
    steps: list[tuple[str, list[str]]] = []
    for block in _BLOCK.findall(markdown):
        commands: list[str] = []
        expected: list[str] = []
        for line in block.splitlines():
            if line.startswith(_EXPECT):
                expected.append(line[len(_EXPECT) :])
                continue
            if expected:
                steps.append(("\n".join(commands), expected))
                commands, expected = [], []
            commands.append(line)
        if commands or expected:
            steps.append(("\n".join(commands), expected))
    return steps


def _script(steps: list[tuple[str, list[str]]]) -> str:
    lines = ["set -uo pipefail", "OUT=$(mktemp)", "trap 'rm -f \"$OUT\"' EXIT"]
    for number, (commands, expected) in enumerate(steps, start=1):
        allowed = "0|28" if "--max-time" in commands else "0"
        lines += [
            f"echo '--- step {number}'",
            "{",
            commands,
            '} >"$OUT" 2>&1',
            "rc=$?",
            'cat "$OUT"',
            f'case $rc in {allowed}) ;; *) echo "step {number} exited $rc"; exit 1;; esac',
        ]
        for text in expected:
            quoted = "'" + text.replace("'", "'\\''") + "'"
            lines.append(
                f'grep -qF -- {quoted} "$OUT" || {{ echo "step {number} did not print: "{quoted}; exit 1; }}'
            )
    return "\n".join(lines) + "\n"


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LiveServer]:
    # The settings `make run` uses, but for the admin, the key and fast hashing: the
    # defaults of rate limiting and timeouts are what the examples show.
    server = start_server(tmp_path / "server.log", {"APP_RATE_LIMIT_REQUESTS": "100"})
    yield server
    server.stop()


def test_the_examples_parse_into_steps_with_expectations() -> None:
    for document in DOCUMENTS:
        steps = _steps((ROOT / document).read_text(encoding="utf-8"))
        assert len(steps) >= 3, document
        assert sum(len(expected) for _, expected in steps) >= 3, document


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_example_runs_as_written(document: str, fresh_server: LiveServer) -> None:
    script = _script(_steps((ROOT / document).read_text(encoding="utf-8")))
    result = subprocess.run(
        ["/bin/bash", "-c", script],
        cwd=ROOT,
        env={
            "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "API": fresh_server.base_url,
            # What a reader who set their own admin password has in the environment.
            "APP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_scaling_example_runs_two_replicas_on_one_redis(tmp_path: Path) -> None:
    """docs/scaling.md starts redis-server and two `make run` replicas itself: on free ports,
    in a process group of its own that is ended afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (Debian package redis-server); CI installs it")
    steps = _steps((ROOT / "docs" / "scaling.md").read_text(encoding="utf-8"))
    redis_port, a_port, b_port = free_ports(3)
    process = subprocess.Popen(
        ["/bin/bash", "-c", _script(steps)],
        cwd=ROOT,
        env={
            "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
            "REDIS_PORT": str(redis_port),
            "A": str(a_port),
            "B": str(b_port),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=240)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the two replicas the example left running
        with redis.Redis(port=redis_port) as client:
            client.shutdown(nosave=True)
    assert process.returncode == 0, output[-6000:]
