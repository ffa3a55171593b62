"""One process at a time per channel: an OS file lock that dies with its process."""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from syncctl.errors import Locked, TransientError

_POLL_S = 0.05


def _lock_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock"


def _open(lock_dir: Path, name: str) -> int:
    lock_dir.mkdir(parents=True, exist_ok=True)
    return os.open(lock_dir / _lock_name(name), os.O_RDWR | os.O_CREAT, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def hold(lock_dir: Path, name: str) -> Iterator[None]:
    """Hold the lock called `name` or raise Locked at once (never wait)."""
    fd = _open(lock_dir, name)
    try:
        if not _try_lock(fd):
            raise Locked(f"{name} is busy: another syncctl process is working on it")
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def wait_for(
    lock_dir: Path,
    name: str,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold the lock called `name`, waiting up to `timeout_s` for another process to
    let it go (for short critical sections, such as rotating a token); TransientError
    when it is still held then. Other threads of this process wait on it too."""
    fd = _open(lock_dir, name)
    try:
        deadline = clock() + timeout_s
        while not _try_lock(fd):
            if clock() >= deadline:
                raise TransientError(
                    f"{name} stayed busy for {timeout_s:g} s: another syncctl process holds it; try again later"
                )
            sleep(_POLL_S)
        yield
    finally:
        os.close(fd)
