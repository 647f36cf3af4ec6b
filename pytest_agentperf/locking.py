"""An exclusive lock between processes, held on a lock file beside the file it protects.

``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows: the operating system releases the lock
when its holder exits, even by a crash or a kill, so a lock is never left stale. The holder
removes the lock file when it is done; a process that was waiting on the removed file notices
(the path no longer names the file it locked) and starts again, so two never hold it at once.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_TIMEOUT = 60.0
_POLL = 0.02


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the timeout."""


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file that guards ``path``: ``<path>.lock`` beside it."""
    p = Path(path)
    return p.with_name(p.name + ".lock")


def _try_lock(fd: int) -> bool:
    """Take the lock without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def locked(
    path: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Path]:
    """Hold the exclusive lock that guards ``path`` (its folder must exist) for the block.

    Waits at most ``timeout`` seconds for another holder, then raises ``LockTimeout``; raises
    ``OSError`` when the lock file cannot be created or is not a regular file (a link is not
    followed: a planted link cannot make us open a device).
    """
    lock = lock_path(path)
    fd = _acquire(lock, timeout, clock)
    try:
        yield lock
    finally:
        if sys.platform == "win32":  # an open file cannot be removed there
            _unlock(fd)
            os.close(fd)
            with contextlib.suppress(OSError):  # another process has it open: it stays
                os.unlink(lock)
        else:  # remove it while still holding it, so no one can lock it in between
            with contextlib.suppress(OSError):
                os.unlink(lock)
            _unlock(fd)
            os.close(fd)


def _acquire(lock: Path, timeout: float, clock: Callable[[], float]) -> int:
    """Open and lock ``lock``; returns the descriptor that holds the lock."""
    deadline = clock() + timeout
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        fd = os.open(lock, flags, 0o666)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"the lock file {lock} is not a regular file")
            while not _try_lock(fd):
                if clock() >= deadline:
                    raise LockTimeout(
                        f"another process has held the lock {lock} for more than {timeout:g} s "
                        "(another pytest session saving the same file?); try again when it "
                        "ends"
                    )
                time.sleep(_POLL)
            try:
                current = os.stat(lock)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(current, os.fstat(fd)):
                return fd
            _unlock(fd)  # the holder removed this file after we opened it: start again
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
