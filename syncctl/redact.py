"""Secrets never leave the process: every message, log line and run-log entry
passes through `redact` first."""

from __future__ import annotations

import json
import logging
import threading

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= _MIN_SECRET_LEN:
            with self._lock:
                self._secrets.update(spellings(secret))

    def __call__(self, text: object) -> str:
        text = str(text)
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()


def spellings(secret: str) -> set[str]:
    """The secret as written and as escaped text shows it: inside JSON (an error body
    echoing it, --json output) and inside a Python repr (exception messages,
    tracebacks), whichever quote the repr escapes."""
    escaped = secret.encode("unicode_escape").decode("ascii")  # backslashes, control and non-ASCII characters
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        escaped,
        escaped.replace("'", "\\'"),
        escaped.replace('"', '\\"'),
    }


redact = Redactor()
"""The process-wide redactor: config loading registers every credential value."""


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True
