"""Old import paths of modules that moved into sub-packages, kept working.

``import pytest_agentperf.compare`` gives the module ``pytest_agentperf.baseline.comparison``
itself (the same object, so patches and ``isinstance`` checks agree), loaded only when the old
name is imported. New code should use the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

MOVED = {
    "abort": "observers.abort",
    "collect": "assemble",
    "compare": "baseline.comparison",
    "contention": "observers.contention",
    "gate": "baseline.gate",
    "memory": "observers.memory",
    "runner": "fixture",
    "windows": "observers.windows",
}
"""Old module name -> where it lives now, both relative to the package."""


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # the import system binds the old name to this very module object
        return importlib.import_module(self._target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was loaded under its new name."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of ``MOVED`` and hands out the modules under their new names."""

    def __init__(self, package: str) -> None:
        self._package = package

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        prefix, _, name = fullname.rpartition(".")
        if prefix != self._package or name not in MOVED:
            return None
        new = f"{self._package}.{MOVED[name]}"
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install(package: str) -> None:
    """Let ``package``'s old module names import (once per process)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder(package))
