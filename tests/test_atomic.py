from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from pytest_agentperf import atomic
from pytest_agentperf.atomic import FileKind, check_target, json_kind, write_atomic
from pytest_agentperf.errors import AgentPerfError, OutputPathError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and devices")

OURS = json_kind("test file", "test-format", legacy_keys=("old_a", "old_b"))
ANY = FileKind("any file", lambda path: True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "sub" / "a.json", "{}", kind=OURS)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "sub" / "a.json") == 0o644
    assert (tmp_path / "sub" / "a.json").read_text() == "{}"


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "b.json"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new", kind=ANY)
    assert target.read_text() == "new"
    assert _mode(target) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


def test_a_symlinked_file_is_written_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(link, "new", kind=ANY)
    assert link.is_symlink()
    assert real.read_text() == "new"


# --------------------------------------------------------------------------- what may be replaced


def _refused(path: Path | str, root: Path | None = None, kind: FileKind = OURS) -> str:
    with pytest.raises(OutputPathError) as info:
        write_atomic(path, '{"format": "test-format"}', kind=kind, root=root)
    err = info.value
    assert isinstance(err, AgentPerfError)
    assert str(path) in str(err) and "left untouched" in str(err)
    return err.problem


def test_a_device_is_never_replaced_not_even_by_root() -> None:
    before = os.stat("/dev/null")
    assert "a character device" in _refused("/dev/null", kind=ANY)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (
        before.st_ino,
        before.st_rdev,
    )


def test_dev_stdout_is_refused_whatever_it_points_to(tmp_path: Path) -> None:
    """As a pipe (here), a terminal or the capture's deleted temp file: never written."""
    import subprocess

    code = (
        "import sys\n"
        "from pytest_agentperf.atomic import FileKind, write_atomic\n"
        "from pytest_agentperf.errors import OutputPathError\n"
        "try:\n"
        "    write_atomic('/dev/stdout', 'x', kind=FileKind('any', lambda p: True))\n"
        "except OutputPathError as exc:\n"
        "    sys.stderr.write(exc.problem)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == ""
    assert "a pipe (FIFO)" in done.stderr
    assert _refused("/dev/stdout", kind=ANY)  # under pytest's capture, whatever it is


def test_a_pipe_a_directory_and_a_link_to_them_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "a pipe (FIFO)" in _refused(fifo, kind=ANY)
    assert "a directory" in _refused(tmp_path, kind=ANY)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    assert "a pipe (FIFO)" in _refused(link, kind=ANY)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and link.is_symlink()


def test_a_foreign_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    for text in ('{"format": "someone-else"}', "[1, 2]", "{not json", "plain notes\n", "\x00\xff"):
        target = tmp_path / "notes.json"
        target.write_text(text, encoding="latin-1")
        assert "is not a test file" in _refused(target)
        assert target.read_text(encoding="latin-1") == text
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json"]


@pytest.mark.parametrize(
    "text",
    [
        "",  # an empty file (e.g. touched by the CI script) is fine
        '{"format": "test-format", "runs": []}',
        '{\n  "format": "test-format",\n  "runs": [1, 2',  # ours, cut short: still ours
        '{"runs": [], "format": "test-format"}',  # the marker not first: the file is parsed
        '{"old_a": 1, "old_b": 2}',  # written before the marker existed
    ],
)
def test_an_empty_file_or_one_of_ours_is_replaced(tmp_path: Path, text: str) -> None:
    target = tmp_path / "out.json"
    target.write_text(text, encoding="utf-8")
    assert check_target(target, OURS) == target.resolve()
    write_atomic(target, "new", kind=OURS)
    assert target.read_text(encoding="utf-8") == "new"


def test_a_dangling_link_out_of_the_project_is_refused(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    link = project / "out.json"
    link.symlink_to(outside / "cron.d" / "job")
    assert "does not exist and is outside the project" in _refused(link, root=project)
    assert "does not exist" in _refused(link)  # no project given: no dangling link is followed
    folder_link = project / ".agentperf"
    folder_link.symlink_to(outside / "made-up")
    assert "outside the project" in _refused(folder_link / "baseline.json", root=project)
    assert not outside.exists()


def test_a_dangling_link_inside_the_project_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "data" / "real.json")
    write_atomic(link, "new", kind=OURS, root=tmp_path)
    assert link.is_symlink() and (tmp_path / "data" / "real.json").read_text() == "new"


def test_a_link_to_a_file_of_ours_outside_the_project_is_written_through(tmp_path: Path) -> None:
    project, shared = tmp_path / "project", tmp_path / "shared.json"
    project.mkdir()
    shared.write_text('{"format": "test-format"}')
    (project / "out.json").symlink_to(shared)
    write_atomic(project / "out.json", "new", kind=OURS, root=project)
    assert shared.read_text() == "new" and (project / "out.json").is_symlink()


def test_a_link_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert "cannot be examined" in _refused(tmp_path / "a", root=tmp_path)


def test_a_device_swapped_in_during_the_write_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.json"
    real_fsync = os.fsync

    def swap(fd: int) -> None:
        if target.exists() and not stat.S_ISFIFO(target.stat().st_mode):
            target.unlink()
            os.mkfifo(target)
        real_fsync(fd)

    target.write_text("")
    monkeypatch.setattr(atomic.os, "fsync", swap)
    with pytest.raises(OutputPathError, match="stopped being a regular file"):
        write_atomic(target, "new", kind=OURS)
    assert stat.S_ISFIFO(target.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
