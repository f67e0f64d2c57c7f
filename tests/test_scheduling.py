"""The order test files reach the workers (tests/scheduling.py): longest first, new files
before any, and a measure that names only files that exist."""

from __future__ import annotations

from tests.live_server import ROOT
from tests.scheduling import file_of, longest_first, read_durations


def test_files_go_longest_first_and_unmeasured_ones_before_them() -> None:
    seconds = {"tests/a.py": 2.0, "tests/b.py": 40.0, "tests/c.py": 9.5}
    files = ["tests/a.py", "tests/new.py", "tests/b.py", "tests/c.py", "tests/newer.py"]
    assert longest_first(files, seconds) == [
        "tests/new.py",
        "tests/newer.py",
        "tests/b.py",
        "tests/c.py",
        "tests/a.py",
    ]
    assert longest_first(files, {}) == files  # no measure: the collection order


def test_a_test_id_belongs_to_its_file() -> None:
    assert file_of("tests/e2e/test_x.py::test_y[a::b]") == "tests/e2e/test_x.py"
    assert file_of("tests/test_z.py::Class::test_w") == "tests/test_z.py"


def test_the_measure_names_only_test_files_that_exist() -> None:
    measured = read_durations()
    assert measured, "tests/durations.json is missing: run make durations"
    missing = [name for name in measured if not (ROOT / name).is_file()]
    assert missing == [], f"measured files that no longer exist (run make durations): {missing}"
    assert all(seconds >= 0 for seconds in measured.values())
