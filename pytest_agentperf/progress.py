"""A live progress line for long runs on a terminal; silent in CI logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .units import format_seconds

if TYPE_CHECKING:  # the plugin builds progress lines without loading the engine
    from .engine import Progress

SHOW_AFTER = 2.0
"""Seconds a run must last before its progress line appears; the live window (windows.py)
picks its length then too, so the line's first figures are ready."""


class ProgressLine:
    """Rewrites one line of its own with calls done and elapsed time; leaves the final count.

    The line starts below whatever pytest has written on the current line, so a verbose test
    name is never overwritten.
    """

    def __init__(self, label: str, write: Callable[[str], None], width: int | None = None) -> None:
        self._label = label
        self._write = write
        self._width = width
        """Terminal columns: a longer line would wrap, and ``\r`` could not rewrite it."""
        self._shown = 0
        self.detail: Callable[[], str | None] | None = None
        """Extra figures for the line (the last completed window's), when the runner sets it."""

    def __call__(self, p: Progress) -> None:
        if not self._shown and (p.finished or p.elapsed < SHOW_AFTER):
            return
        done = f"{p.done}/{p.total} calls" if p.total is not None else f"{p.done} calls"
        if p.duration is not None:
            when = f"{format_seconds(p.elapsed)} of {format_seconds(p.duration)}"
        else:
            when = format_seconds(p.elapsed)
        errors = f", {p.errors} errors" if p.errors else ""
        extra = self.detail() if self.detail is not None else None
        window = f" | {extra}" if extra else ""
        text = _fit(self._label, f": {done}, {when}{errors}", window, self._width)
        pad = max(0, self._shown - len(text))
        self._write(("\r" if self._shown else "\n") + text + " " * pad)
        self._shown = len(text)
        if p.finished:
            self._write("\n")


def _fit(label: str, figures: str, window: str, width: int | None) -> str:
    """The line within ``width - 1`` columns, never cutting a number: the window figures go
    first (whole ", "-separated parts from the end), then the label loses its start (the
    folders before the test's name); the run's own figures stay whole."""
    text = f"  agentperf {label}{figures}{window}"
    if width is None or len(text) <= width - 1:
        return text
    room = width - 1
    parts = window.split(", ")
    while parts and len(f"  agentperf {label}{figures}{', '.join(parts)}") > room:
        parts.pop()
    window = ", ".join(parts)
    text = f"  agentperf {label}{figures}{window}"
    over = len(text) - room
    if over > 0 and len(label) > 8:  # the end says most: the test's name and the run's
        keep = max(8, len(label) - over - 1)
        label = "…" + label[len(label) - keep :]
        text = f"  agentperf {label}{figures}{window}"
    return text
