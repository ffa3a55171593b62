"""One tree of errors; the CLI turns each branch into a message and an exit code."""

from __future__ import annotations

from dataclasses import dataclass


class SyncctlError(Exception):
    """Base of every error syncctl raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration file, with where it is and what to do."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(SyncctlError):
    """The config (or a command line) is wrong: exit 2, nothing is sent."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(file="", line=None, message=problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class AuthError(SyncctlError):
    """A channel or carrier refused the credentials: a person must act (exit 3)."""


class TransientError(SyncctlError):
    """The remote stayed unreachable or failing through every retry (exit 75)."""


class RateLimited(TransientError):
    """The remote kept answering 429 through every retry (exit 75)."""


class UncertainWrite(TransientError):
    """A non-idempotent request may or may not have been applied (timeout or 5xx
    after sending). The caller reads state back before trying again."""


class RecordRejected(SyncctlError):
    """The remote refused one item (4xx): that item fails, the rest go on (exit 1)."""


class NothingToSend(SyncctlError):
    """The channel has nothing to take for this item, by design (e.g. Mercado Livre's
    Full stock, which is what sits in its warehouse): not an error. The message says
    why, once; the item is not tried again until its payload changes."""


class Undelivered(SyncctlError):
    """The channel took a message but will not deliver it (e.g. moderation). It must
    not be sent again: `channel_message_id` is what the channel stored."""

    def __init__(self, message: str, channel_message_id: str) -> None:
        super().__init__(message)
        self.channel_message_id = channel_message_id


class Unsupported(SyncctlError):
    """The channel has no API for this feature."""


class Locked(SyncctlError):
    """Another process holds this channel's lock (exit 75)."""


class ErpError(SyncctlError):
    """The ERP database is missing a table/column or refused a write."""
