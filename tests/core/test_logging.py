"""Logs never carry secrets, whichever renderer writes them, and tracebacks show no locals."""

from __future__ import annotations

import pytest

from app.core.logging import REDACTED, configure_logging, get_logger


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_secret_fields_are_redacted_and_tracebacks_are_plain(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", fmt)  # type: ignore[arg-type]
    log = get_logger(f"tests.redaction.{fmt}")
    log.info("login", password="hunter2-secret", authorization="Bearer abc.def", user_id=7)

    def fails(password: str) -> None:
        raise RuntimeError("boom")

    secret = "-".join(["local", "hunter3"])  # only a traceback with locals would print it
    try:
        fails(secret)
    except RuntimeError:
        log.exception("failed", password_hash="$2b$12$abcdef")
    err = capsys.readouterr().err
    for secret in ("hunter2-secret", "abc.def", "local-hunter3", "$2b$12$abcdef"):
        assert secret not in err, (fmt, err)
    assert REDACTED in err
    assert "user_id" in err
    assert "RuntimeError: boom" in err
    configure_logging("INFO", "json")
