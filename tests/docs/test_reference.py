"""The reference pages name everything the code defines: every setting, every problem type."""

from __future__ import annotations

from app.core.config import Settings
from app.core.exceptions import ProblemType
from tests.live_server import ROOT


def test_every_setting_is_documented() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`APP_{name.upper()}`" not in page]
    assert missing == []


def test_every_problem_type_is_documented() -> None:
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    missing = [str(kind) for kind in ProblemType if f"`{kind}`" not in page]
    assert missing == []


def test_no_document_points_outside_the_repository() -> None:
    for path in [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "docs").glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text, path
        assert "CONTRACT.md" not in text, path


def test_every_gauge_says_how_it_merges_across_workers() -> None:
    """docs/deployment.md's table ("Several workers in one pod") names every gauge under the
    merge its code declares."""
    import re

    from prometheus_client import REGISTRY, Gauge

    import app.main  # noqa: F401 - every module with metrics is imported by the app

    declared = {
        gauge._name: gauge._multiprocess_mode
        for gauge in list(REGISTRY._collector_to_names)
        if isinstance(gauge, Gauge)
    }
    page = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    documented: dict[str, str] = {}
    for row in re.findall(r"^\| (`[a-z_]+`.*) \| .*\(`(livesum|liveall|max)`\)", page, re.M):
        names, mode = row
        for name in re.findall(r"`([a-z_]+)`", names):
            documented[name] = mode
    assert documented == declared
