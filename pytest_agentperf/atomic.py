"""Writing the plugin's files: only over a file of ours, and atomically (old or new, never half).

Every file the plugin writes (the baseline, ``--agentperf-json`` and every report) goes through
``write_atomic``, which first calls ``check_target``: a path that is a device (``/dev/null``,
``/dev/stdout``), a directory, a dangling symbolic link out of the project, or an existing file
that is not of the expected ``FileKind`` is refused and left untouched, so not even a session
run as root can replace a device node or someone else's file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputPathError

_HEAD_BYTES = 4096
_MAX_PARSE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class FileKind:
    """What a file of ours looks like: ``description`` names it in messages, ``recognise``
    tells from an existing, non-empty regular file whether it is one (so it may be replaced)."""

    description: str
    recognise: Callable[[Path], bool]


def json_kind(
    description: str, marker: str, *, legacy_keys: Collection[str] = (), key: str = "format"
) -> FileKind:
    """A JSON file whose top-level object has ``key: marker`` (or, for files written before the
    marker existed, every one of ``legacy_keys``).

    Our writers put the marker first, so the head of the file is enough and a large or
    truncated file of ours (a crash of an older writer, a bad merge) is still recognised; a file
    whose head does not show it is parsed whole (at most 64 MiB) and its top level checked.
    """
    head_re = re.compile(
        rb'\A\s*\{\s*"'
        + re.escape(key.encode())
        + rb'"\s*:\s*"'
        + re.escape(marker.encode())
        + rb'"'
    )
    legacy = frozenset(legacy_keys)

    def recognise(path: Path) -> bool:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
            if head_re.match(head):
                return True
            if os.fstat(f.fileno()).st_size > _MAX_PARSE_BYTES:
                return False
            raw = head + f.read()
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, too deep
            return False
        if not isinstance(doc, dict):
            return False
        return doc.get(key) == marker or (bool(legacy) and legacy <= doc.keys())

    return FileKind(description, recognise)


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def _through_dangling_link(path: str) -> bool:
    """Whether reaching ``path`` follows a symbolic link (it or a folder on the way) whose
    target does not exist: writing there would create a file (and folders) wherever it points."""
    p = Path(os.path.abspath(path))
    return any(os.path.islink(q) and not os.path.exists(q) for q in (*reversed(p.parents), p))


def check_target(
    path: str | os.PathLike[str], kind: FileKind, *, root: str | os.PathLike[str] | None = None
) -> Path:
    """The real path to write ``path`` to, or ``OutputPathError`` when writing there could
    damage something that is not ours. Call it before writing any file.

    Allowed: a new file; an empty file; an existing regular file that ``kind`` recognises;
    a symbolic link to one of these (the file it points to is written, the link stays), and a
    dangling link whose target lies inside ``root`` (the project; with no root, none is).
    Refused: a directory, a device, a pipe or socket (``/dev/null``, ``/dev/stdout``), a link
    loop, a dangling link out of ``root``, and an existing file that ``kind`` does not recognise.
    """
    given = os.fspath(path)

    def refuse(problem: str) -> OutputPathError:
        return OutputPathError(
            f"refusing to write {given}: {problem}; it is left untouched. "
            f"Choose another path or remove it",
            path=given,
            problem=problem,
        )

    try:
        st = os.stat(given)  # follows links, also the kernel's (/dev/stdout -> a pipe)
    except (FileNotFoundError, NotADirectoryError):  # creating it will say what is wrong
        st = None
    except OSError as exc:  # a link loop, no permission
        raise refuse(f"it cannot be examined ({exc.strerror or exc})") from None
    real = os.path.realpath(given)
    if st is None:
        outside = root is None or not _inside(real, os.path.realpath(root))
        if outside and _through_dangling_link(given):
            where = " and is outside the project" if root is not None else ""
            raise refuse(f"it leads through a symbolic link to {real}, which does not exist{where}")
        return Path(real)
    if not stat.S_ISREG(st.st_mode):
        raise refuse(f"it is {_file_type(st.st_mode)}, not a regular file")
    try:
        same = os.path.samestat(st, os.stat(real))
    except OSError:
        same = False
    if not same:  # a link the path resolution cannot follow (e.g. /proc/self/fd/N)
        raise refuse("it is a special link, not a plain path to a regular file")
    if st.st_size:
        try:
            ours = kind.recognise(Path(real))
        except OSError as exc:
            raise refuse(f"it cannot be read ({exc.strerror or exc})") from None
        if not ours:
            raise refuse(f"it exists and is not a {kind.description}")
    return Path(real)


def write_atomic(
    path: str | os.PathLike[str],
    text: str | Iterable[str],
    *,
    kind: FileKind,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``text`` (a string, or the parts of one, written as they come so a large file is
    never held whole) to ``path`` when ``check_target`` allows it: to a temp file beside it,
    fsynced, then renamed over it. Returns the path written (a link's target).

    Raises ``OutputPathError`` (nothing written) or ``OSError`` (the old file is unchanged).
    Permissions of a replaced file are kept; a new file gets 0666 minus the umask.
    """
    target = check_target(path, kind, root=root)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with contextlib.suppress(OSError, AttributeError):  # mkstemp's 0600 would stick
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            if isinstance(text, str):
                f.write(text)
            else:
                f.writelines(text)
            f.flush()
            os.fsync(f.fileno())
        # The check above ran before the write; if a device or directory took the file's
        # place meanwhile, do not rename over it (this narrows the window, it cannot close it).
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(target).st_mode):
                raise OutputPathError(
                    f"refusing to write {target}: it stopped being a regular file while it was "
                    "being written; it is left untouched",
                    path=str(target),
                    problem="replaced during the write",
                )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable where the platform allows it.
    with contextlib.suppress(OSError, AttributeError):
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return target


def _mode_for(path: Path) -> int:
    """The permissions the file should get: those of the file it replaces, else 0666 - umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
