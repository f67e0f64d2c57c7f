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


DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "ARCHITECTURE.md",
    ROOT / "SECURITY.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
# A path in backticks under one of the repository's folders: `app/core/breaker.py`, `k8s/base/`.
_CITED_PATH = r"`((?:app|tests|bench|k8s|docs|\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])`"
_SETTING = r"\bAPP_[A-Z][A-Z0-9_]*[A-Z0-9]\b"


def test_every_file_the_documents_cite_exists() -> None:
    import re

    missing = [
        f"{document.name}: {cited}"
        for document in DOCUMENTS
        for cited in re.findall(_CITED_PATH, document.read_text(encoding="utf-8"))
        if "*" not in cited and not (ROOT / cited).exists()
    ]
    assert missing == []


def test_every_setting_the_documents_name_exists() -> None:
    import re

    known = {f"APP_{name.upper()}" for name in Settings.model_fields}
    unknown = [
        f"{document.name}: {name}"
        for document in [*DOCUMENTS, ROOT / ".env.example"]
        for name in sorted(set(re.findall(_SETTING, document.read_text(encoding="utf-8"))))
        if name not in known
    ]
    assert unknown == []


def _as_documented(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_configuration_pages_defaults_are_the_codes() -> None:
    """Every row of docs/configuration.md whose default is one literal states the default the
    code has."""
    import re

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `APP_([A-Z0-9_]+)` \| `([^`|]*)` \|", page, re.M)
    assert len(rows) > 30
    wrong = []
    for name, documented in rows:
        field = Settings.model_fields[name.lower()]
        if field.default_factory is not None or field.default is None:
            continue
        actual = _as_documented(field.default)
        if actual != documented:
            wrong.append(f"APP_{name}: documented {documented!r}, the code says {actual!r}")
    assert wrong == []
