"""Structured logging: structlog for our events, the same format for stdlib and uvicorn records.

Every line carries the context bound with `structlog.contextvars` (the request id while a request
is served), whether it was logged through structlog or through the standard library.

Our own events take structlog's fast path (a level-filtering bound logger, cached, rendered
with orjson and written straight to stderr): the access log writes one line per request, and
going through the standard library's `logging` machinery would cost more than the rest of the
middleware chain together. Records of other libraries (uvicorn, asyncio) go through `logging`
and are rendered by the same processors, so the output looks the same.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Literal

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _orjson_dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


class _StderrLogger:
    """Writes each rendered line to the current `sys.stderr` (looked up per line, so test
    harnesses that swap stderr still see the output)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        """Write one line."""
        # stderr is line-buffered, so each line goes out whole and at once.
        sys.stderr.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger_factory(name: str | None = None, *_: Any) -> _StderrLogger:
    return _StderrLogger(name)


def _add_logger_name(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    # Our loggers carry their name; records from the standard library carry it in the record.
    record = event.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name is not None:
        event.setdefault("logger", name)
    return event


# Field names whose values never reach a log line, in any renderer.
_SECRET_FIELDS = re.compile(r"pass(word)?|secret|token|authorization|cookie|hash|api_?key", re.I)
REDACTED = "[redacted]"


# Each field name's verdict, kept: every line asks about the same few names, and the regex
# search was the costliest step of the access line. Bounded, because a standard-library
# record can carry any `extra` name; past the bound, names are judged without being kept.
_SECRET_VERDICTS: dict[str, bool] = {}
_MAX_VERDICTS = 1024


def _is_secret(key: str) -> bool:
    verdict = _SECRET_VERDICTS.get(key)
    if verdict is None:
        verdict = key != "event" and _SECRET_FIELDS.search(key) is not None
        if len(_SECRET_VERDICTS) < _MAX_VERDICTS:
            _SECRET_VERDICTS[key] = verdict
    return verdict


def redact_secrets(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Replace the value of every field named like a secret (`password`, `token`, ...)."""
    for key in event:
        if _is_secret(key):
            event[key] = REDACTED
    return event


class _UtcTimestamp:
    """`timestamp`: ISO 8601 in UTC with microseconds (`2026-11-26T08:42:00.894430Z`).

    The date and time of day are formatted once per second and kept; structlog's own stamper
    built a timezone-aware datetime for every line, the costliest step of the access line.
    """

    def __init__(self) -> None:
        # One tuple, replaced whole: a thread never sees a second paired with another's text.
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        now = time.time()
        second, text = self._second
        if int(now) != second:
            second = int(now)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        event["timestamp"] = f"{text}.{int((now - second) * 1_000_000):06d}Z"
        return event


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """`trace_id` and `span_id` of the span running now, when there is one (tracing on)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def configure_logging(
    level: str, fmt: Literal["console", "json"], *, trace_ids: bool = False
) -> None:
    """Send structlog events and standard-library records to stderr in one format; with
    `trace_ids` (tracing on), every line written inside a span names its trace and span.

    Safe to call more than once (each app built in tests calls it); the last call wins for
    loggers bound after it.
    """
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_logger_name,
        structlog.processors.add_log_level,
        _UtcTimestamp(),
        redact_secrets,
    ]
    if trace_ids:
        shared.append(add_trace_ids)
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        shared += [structlog.processors.format_exc_info]
    else:
        # Plain tracebacks: the rich ones installed with the dev tools print every local
        # variable (a password, a hash) and took seconds per error on the event loop.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _UVICORN_LOGGERS:
        # uvicorn installs handlers of its own; ours replace them so its lines are structured too.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level)
    # The access log is ours (one line per request, with the route template): silence uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger that names its module in every line (`logger` field)."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger
