"""Logs never carry secrets, whichever renderer writes them, and tracebacks show no locals."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

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


def test_json_lines_carry_a_utc_timestamp_with_microseconds_read_at_write_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    log = get_logger("tests.timestamp")
    before = datetime.now(UTC)
    for _ in range(3):  # the kept date and time must not freeze the clock
        log.info("tick")
        time.sleep(0.002)
    after = datetime.now(UTC)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    stamps = [line["timestamp"] for line in lines if line["event"] == "tick"]
    assert len(stamps) == 3
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
    moments = [datetime.fromisoformat(stamp) for stamp in stamps]
    slack = timedelta(milliseconds=1)  # the two clocks round microseconds differently
    assert before - slack <= moments[0] < moments[1] < moments[2] <= after + slack


def test_a_secret_verdict_is_kept_per_name_and_new_names_are_still_judged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    log = get_logger("tests.verdicts")
    for n in range(1100):  # past the bound on kept verdicts
        log.info("many", **{f"field_{n}": "plain"})
    log.info("late", late_api_key="k-123", late_name="visible")
    late = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert (late["late_api_key"], late["late_name"]) == (REDACTED, "visible")
