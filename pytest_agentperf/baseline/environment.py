"""Where and from what a run was measured: the machine, the git commit, the plugin version.

The baseline records it beside every run; the gate flags a baseline from another machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass

_TIMEOUT = 2.0
"""Seconds a helper command (git, sysctl) may take."""


@dataclass(frozen=True)
class Machine:
    """Where a run was measured; a different machine is flagged, not gated."""

    cpu: str = "unknown"
    cores: int | None = None
    os: str = "unknown"
    arch: str = "unknown"
    python: str = "unknown"
    implementation: str = "unknown"
    platform: str = "unknown"
    workers: int | None = None
    """pytest-xdist workers of the session that measured (0: no xdist; None: not recorded,
    as in baselines written before it was)."""

    def differences(self, other: Machine) -> tuple[str, ...]:
        """What differs between ``self`` (baseline) and ``other`` (now), one phrase each.

        Compared: CPU model, core count, OS and architecture, Python implementation and
        major.minor version, and the number of pytest-xdist workers (when both are known).
        Kernel and patch releases are recorded but not compared.
        """
        out = []
        if self.cpu != other.cpu:
            out.append(f"CPU {self.cpu!r} -> {other.cpu!r}")
        if self.cores != other.cores:
            out.append(f"cores {self.cores} -> {other.cores}")
        if (self.os, self.arch) != (other.os, other.arch):
            out.append(f"OS {self.os}/{self.arch} -> {other.os}/{other.arch}")
        mine = (self.implementation, ".".join(self.python.split(".")[:2]))
        theirs = (other.implementation, ".".join(other.python.split(".")[:2]))
        if mine != theirs:
            out.append(f"Python {' '.join(mine)} -> {' '.join(theirs)}")
        if self.workers is not None and other.workers is not None and self.workers != other.workers:
            out.append(f"xdist workers {self.workers} -> {other.workers}")
        return tuple(out)


@dataclass(frozen=True)
class Environment:
    """Machine, git commit and plugin version, gathered once per session."""

    machine: Machine
    commit: str | None
    plugin_version: str


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()[:200] or "unknown"
    except OSError:
        pass
    if platform.system() == "Darwin":
        out = _output(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out[:200]
    return (platform.processor() or platform.machine() or "unknown")[:200]


def machine_info() -> Machine:
    """The machine this process runs on."""
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count(),
        os=platform.system() or "unknown",
        arch=platform.machine() or "unknown",
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform()[:200],
    )


def _output(args: list[str], cwd: str | os.PathLike[str] | None = None) -> str | None:
    """What ``args`` printed (stripped), or None when it could not run, failed or hung."""
    try:
        out = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """``git rev-parse HEAD`` in ``cwd``; None when git or the repository is unavailable."""
    sha = _output(["git", "rev-parse", "HEAD"], cwd)
    if not sha or len(sha) > 64 or not all(c in "0123456789abcdef" for c in sha):
        return None
    return sha


def plugin_version() -> str:
    """The running pytest-agentperf version."""
    from .. import __version__

    return __version__


def current_environment(cwd: str | os.PathLike[str] | None = None) -> Environment:
    """Machine, git commit (of ``cwd``) and plugin version of this session."""
    return Environment(machine_info(), git_commit(cwd), plugin_version())
