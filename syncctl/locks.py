"""One process at a time per channel: an OS file lock that dies with its process."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncctl.errors import Locked


def _lock_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock"


@contextmanager
def hold(lock_dir: Path, name: str) -> Iterator[None]:
    """Hold the lock called `name` or raise Locked at once (never wait)."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / _lock_name(name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Locked(f"{name} is busy: another syncctl process is working on it") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
