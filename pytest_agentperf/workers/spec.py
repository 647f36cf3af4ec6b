"""Worker gateway specs: ``--agentperf-workers=SPEC`` and ``workers=N`` as execnet specs.

No execnet here: a bad spec is refused when pytest starts, whether or not execnet is installed.
"""

from __future__ import annotations

import re

from ..errors import SettingsError

OPTION = "--agentperf-workers"
KINDS = ("ssh=", "socket=", "vagrant_ssh=")
"""Gateways to another host (besides ``popen``, a local process): the first part of a spec."""
MAX_WORKERS = 1024
"""Most gateways one spec may ask for: more is a typo (``100*popen`` would be a hundred
processes on this machine)."""

_COUNT = re.compile(r"^(\d+)\*(.+)$")


def parse_specs(text: str) -> tuple[str, ...]:
    """The gateway specs in ``text``: comma- or space-separated execnet specs, each optionally
    repeated as ``N*spec`` (``2*popen,ssh=host//python=python3``), one per worker.

    Raises SettingsError naming the option and the part that is not a spec.
    """
    specs: list[str] = []
    for part in text.replace(",", " ").split():
        count, spec = 1, part
        match = _COUNT.match(part)
        if match:
            count, spec = int(match.group(1)), match.group(2)
            if count < 1:
                raise SettingsError(
                    f"{OPTION}={text}: {part!r} asks for no worker; use 1*{spec} or more",
                    key=OPTION,
                )
        if not _is_spec(spec):
            raise SettingsError(
                f"{OPTION}={text}: {part!r} is not an execnet gateway spec; expected popen, "
                "ssh=HOST or socket=HOST:PORT, optionally as N*SPEC and with //python=... "
                "(e.g. 2*popen or ssh=host//python=python3)",
                key=OPTION,
            )
        specs += [spec] * count
        if len(specs) > MAX_WORKERS:
            raise SettingsError(f"{OPTION}={text}: more than {MAX_WORKERS} workers", key=OPTION)
    if not specs:
        raise SettingsError(f"{OPTION}={text!r}: no gateway spec given (e.g. 2*popen)", key=OPTION)
    return tuple(specs)


def _is_spec(spec: str) -> bool:
    """``popen`` or ``ssh=HOST`` (``socket=``, ``vagrant_ssh=``), then any ``//key=value``."""
    head, *options = spec.split("//")
    if not all("=" in option for option in options):
        return False
    if head == "popen":
        return True
    kind, _, where = head.partition("=")
    return f"{kind}=" in KINDS and bool(where)


def local_specs(n: int) -> tuple[str, ...]:
    """``workers=N``: N local processes."""
    return ("popen",) * n
