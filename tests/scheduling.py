"""The order in which test files reach the xdist workers: longest first.

`make test` runs the files on four workers (`--dist loadfile`); a worker takes the next file
in the queue while its last two tests run. xdist's own order (most tests first) hands out late
some long files that hold few tests (the browser console, schemathesis): one of them then runs
alone at the end while the other workers have nothing left to do. Longest first leaves only
short files for the end, so the workers finish together (one run in xdist's order ended with
22 s of a single worker; on this CPU-bound suite the total moves by about as much as noise).

How long a file takes is read from `tests/durations.json`, which `make durations` measures (a
run of the whole suite that writes it). A file that is not in it yet goes first: a short file
early costs nothing, a long file late costs the tail. `make test` passes
`--no-loadscope-reorder`, which makes xdist keep the collection order this plugin sets.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")


def file_of(nodeid: str) -> str:
    """The file a test id belongs to (`tests/x/test_y.py::test_z[p]` -> `tests/x/test_y.py`)."""
    return nodeid.split("::", 1)[0]


def longest_first(files: Sequence[str], seconds: Mapping[str, float]) -> list[str]:
    """`files` in the order to run them: those with no measure first (in the order given), then
    the measured ones, longest first."""
    unmeasured = [name for name in files if name not in seconds]
    measured = sorted((name for name in files if name in seconds), key=lambda n: -seconds[n])
    return unmeasured + measured


def read_durations(path: Path = DURATIONS) -> dict[str, float]:
    """The measured seconds per file; empty if there is no measure."""
    if not path.exists():
        return {}
    return {str(name): float(value) for name, value in json.loads(path.read_text()).items()}


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--store-durations`: write each file's time to tests/durations.json at the end."""
    parser.addoption(
        "--store-durations",
        action="store_true",
        help="measure each test file's time (setup, call and teardown) into tests/durations.json",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Reorder the collection by file, longest first; tests keep their order within a file."""
    order = longest_first(
        list(dict.fromkeys(file_of(item.nodeid) for item in items)), read_durations()
    )
    rank = {name: position for position, name in enumerate(order)}
    items.sort(key=lambda item: rank[file_of(item.nodeid)])  # stable: a file's order is kept


class DurationRecorder:
    """Adds up each file's test time from the reports (under xdist, in the controller, which
    receives every worker's reports) and writes them once the session ends."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count setup, call and teardown: a module's server starts in its first test's setup."""
        self.seconds[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the measure, rounded to a tenth of a second, one file per line."""
        if hasattr(session.config, "workerinput"):
            return  # a worker: the controller writes what all of them measured
        measured = {name: round(value, 1) for name, value in sorted(self.seconds.items())}
        DURATIONS.write_text(json.dumps(measured, indent=0) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    """Record durations when asked to."""
    if config.getoption("--store-durations"):
        config.pluginmanager.register(DurationRecorder(), "duration-recorder")
