from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from pytest_agentperf.atomic import write_atomic

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "sub" / "a.json", "{}")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "sub" / "a.json") == 0o644
    assert (tmp_path / "sub" / "a.json").read_text() == "{}"


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "b.json"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


def test_a_symlinked_file_is_written_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"
