"""ci/floor-constraints.txt pins what pyproject.toml declares as the lowest versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _version(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))


def _floors(requirements: list[str]) -> dict[str, tuple[int, ...]]:
    floors = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", req.replace(" ", ""))
        if m:
            floors[m.group(1).lower()] = _version(m.group(2))
    return floors


def test_every_runtime_floor_and_tested_extra_floor_is_pinned_for_the_floor_run() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "ci" / "floor-constraints.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.lower()] = _version(version)
    runtime = _floors(project["dependencies"])
    extras = project["optional-dependencies"]
    tested = _floors(
        extras["langchain"]
        + extras["openai"]
        + extras["server"]
        + extras["prometheus"]
        + extras["html"]
        + extras["otel"]
    )
    tested.update(
        {k: v for k, v in _floors(extras["dev"]).items() if k in {"pytest-xdist", "selenium"}}
    )
    wanted = runtime | tested
    assert {name: pins.get(name) for name in wanted} == wanted
