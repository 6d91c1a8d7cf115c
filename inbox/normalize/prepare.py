"""Normalizing a batch, the pure half of the pipeline, run in a worker process when it pays
(inbox/pipeline/workers.py says how a worker behaves).

Measured (bench/ingest.py, 2 cores): normalizing costs about 0.5 ms a message and storing
about 0.3 ms, one after the other in one process. Normalizing the next batches in workers while
the main process stores this one overlaps the two. What a worker runs is here, in the
normalizer's room: it imports nothing of the store, so that a worker starts quickly, and the
store's batch writer takes a `Prepared` without depending on the pipeline above it.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from inbox.normalize.email import normalize_email
from inbox.normalize.slack import normalize_slack
from inbox.normalize.sms import normalize_sms
from inbox.normalize.types import NormalizedMessage
from inbox.raw import RawMessage

log = structlog.get_logger(__name__)

WARM_UP_MESSAGE = b"From: warm-up@localhost\r\nSubject: warm-up\r\n\r\n" + b"Warm-up text. " * 20


@dataclass(frozen=True, slots=True)
class Prepared:
    """A raw message with its normalized form (None: keep it raw only, `error` says why)."""

    raw: RawMessage
    normalized: NormalizedMessage | None
    error: str
    crashed: bool = False


def prepare(raw: RawMessage, languages: Sequence[str]) -> Prepared:
    if raw.note:
        return Prepared(raw, None, raw.note)
    try:
        if raw.channel == "chat":
            normalized = normalize_slack(raw.payload, languages=languages)
        elif raw.channel == "sms":
            normalized = normalize_sms(raw.payload, languages=languages)
        else:
            normalized = normalize_email(raw.payload, languages=languages)
    except Exception as error:  # the normalizer must never raise; if it does, keep the bytes
        # The exception's text often quotes what it choked on (a header, a line of the body):
        # the error line says what and where, the text goes to DEBUG and to the stored record
        # (`inbox raw list --errors`).
        log.error(
            "normalize_crashed",
            connector=raw.connector,
            external_id=raw.external_id,
            error_type=type(error).__name__,
            traceback="".join(traceback.format_tb(error.__traceback__, limit=-5)),
        )
        log.debug("normalize_crashed_detail", external_id=raw.external_id, error=repr(error))
        return Prepared(raw, None, f"normalizer crashed: {error!r}", crashed=True)
    return Prepared(raw, normalized, "")


def prepare_all(raws: Sequence[RawMessage], languages: Sequence[str]) -> list[Prepared]:
    return [prepare(raw, languages) for raw in raws]


#: What a worker sends back: the normalized message (or None), the error, whether it crashed.
Outcome = tuple[NormalizedMessage | None, str, bool]


def outcomes(raws: Sequence[RawMessage], languages: Sequence[str]) -> list[Outcome]:
    """prepare_all without the raw messages in the result: the worker already has them, and
    sending 5 KB of payload back per message costs the main process time it does not have."""
    return [(p.normalized, p.error, p.crashed) for p in prepare_all(raws, languages)]


def join(raws: Sequence[RawMessage], results: Sequence[Outcome]) -> list[Prepared]:
    return [Prepared(raw, *result) for raw, result in zip(raws, results, strict=True)]


def warm_up(languages: Sequence[str]) -> None:
    """Load what the first message would (the language models) before real mail arrives."""
    normalize_email(WARM_UP_MESSAGE, languages=languages)
