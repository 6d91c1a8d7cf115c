"""structlog configuration: readable on a terminal, JSON lines everywhere else (journald).

Two rules hold for every line, whoever writes it (our code or a library through the standard
logging module): it is one JSON object when the output is not a terminal, and it carries no
secret. Message text is kept out at the source (no body or subject above DEBUG); what cannot be
kept out at the source is handled here:

- Tracebacks are rendered **without local variables**. structlog's default shows each frame's
  locals, and an error in a connector then printed the bot token from slack_sdk's request
  headers, the IMAP password from the login frame and the customer's message from ours.
- Every secret read through `inbox.secrets.Secret` is remembered (`remember_secret`) and
  replaced by "[redacted]" wherever it appears in a line, as a last defence against an
  exception message or a library that prints one.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
REDACTED = "[redacted]"
#: Shorter values are not redacted: they would match ordinary words and garble the lines.
MIN_SECRET_LENGTH = 8

_secrets: frozenset[str] = frozenset()
_secrets_lock = threading.Lock()


def remember_secret(value: str) -> None:
    """From now on, `value` is replaced by "[redacted]" in every log line of this process."""
    global _secrets
    if len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _secrets_lock:
        _secrets = _secrets | {value}


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A processor: every remembered secret out of every value, nested ones included.

    Runs after the traceback is rendered, so an exception's text is covered too. Values that
    are not JSON types are turned into their repr first, which is what the renderers would
    print anyway, so that nothing reaches them unredacted."""
    known = _secrets
    if not known:
        return event_dict
    return {key: _redacted(value, known) for key, value in event_dict.items()}


def _redacted(value: Any, known: frozenset[str]) -> Any:
    if isinstance(value, str):
        for secret in known:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {key: _redacted(item, known) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(item, known) for item in value]
    return _redacted(repr(value), known)


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    threshold = LEVELS.get(level, logging.INFO)
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[Processor]
    if use_json:
        rendering = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            redact_secrets,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        # Tracebacks as plain text here, where redaction sees them: ConsoleRenderer's own
        # (rich) traceback would be drawn after it, with the frames' locals.
        rendering = [
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=stream.isatty()),
        ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that use the standard logging module (alembic, SQLAlchemy, slack_sdk) go to
    # the same place, as the same kind of line, through the same redaction.
    handler = _LineHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    logging.basicConfig(handlers=[handler], level=max(threshold, logging.WARNING), force=True)


class _LineHandler(logging.Handler):
    """Writes a standard-library record through structlog's printer for the same stream, so
    both share one lock and a library's line never lands inside one of ours."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._printer = structlog.PrintLogger(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._printer.msg(self.format(record))
        except Exception:
            self.handleError(record)
