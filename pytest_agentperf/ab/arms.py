"""The arms of an A/B comparison and the comparison's own settings, validated before any call."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SettingsError
from ..units import Unit, parse

COMPARE_KEYS = ("max_slowdown", "max_cost_increase", "blocks")
"""Settings only ``agentperf.compare`` takes; every other setting applies to each arm."""
DEFAULT_BLOCKS = 30
"""Blocks a comparison is split into when ``blocks`` is not given (fewer when there are fewer
calls per arm): enough for the bootstrap over blocks, few enough that each block holds several
calls per arm."""
MAX_BLOCKS = 100_000


@dataclass(frozen=True)
class CompareOptions:
    """The comparison's own settings: its budgets and how many blocks."""

    max_slowdown: float | None = None
    """Fail when an arm's p50 or p95 is above the reference's by more than this, beyond doubt."""
    max_cost_increase: float | None = None
    """Fail when an arm's cost per call is above the reference's by more than this."""
    blocks: int | None = None


def split_options(settings: Mapping[str, Any]) -> tuple[CompareOptions, dict[str, Any]]:
    """The comparison's own settings, validated, and the rest (the per-arm settings)."""
    rest = {k: v for k, v in settings.items() if k not in COMPARE_KEYS}
    slowdown = _fraction(settings, "max_slowdown")
    cost = _fraction(settings, "max_cost_increase")
    blocks = settings.get("blocks")
    if blocks is not None and (
        isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= MAX_BLOCKS
    ):
        raise SettingsError(
            f"blocks={blocks!r}: expected a whole number of blocks from 1 to {MAX_BLOCKS:,} "
            f"(default: {DEFAULT_BLOCKS}, or one per call when there are fewer calls)",
            key="blocks",
        )
    return CompareOptions(slowdown, cost, blocks), rest


def _fraction(settings: Mapping[str, Any], key: str) -> float | None:
    value = settings.get(key)
    if value is None:
        return None
    return parse(value, Unit.FRACTION, key=key)


def check_arms(arms: object) -> list[tuple[str, Any]]:
    """``arms`` as (name, agent) pairs, the reference first; SettingsError when it is not a
    mapping of two or more distinct, non-empty names to callables (or Runnables)."""
    if not isinstance(arms, Mapping):
        raise SettingsError(
            f"arms={type(arms).__name__}: compare() takes a mapping of arm names to agents, "
            'e.g. {"gpt-4o": agent_a, "gpt-4o-mini": agent_b}; the first is the reference',
            key="arms",
        )
    pairs = list(arms.items())
    if len(pairs) < 2:
        got = "none" if not pairs else f"only {pairs[0][0]!r}"
        raise SettingsError(
            f"compare() needs two or more arms to compare, got {got}; for one agent use "
            "agentperf.run(fn)",
            key="arms",
        )
    seen: dict[str, str] = {}
    for name, agent in pairs:
        if not isinstance(name, str) or not name.strip():
            raise SettingsError(
                f"arm name {name!r}: each arm needs a non-empty str name (it names the arm's "
                "row in every report)",
                key="arms",
            )
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in name) or "/" in name:
            raise SettingsError(
                f"arm name {name!r}: an arm name must not hold control characters (newline, "
                "tab, ...), lone surrogates or '/' (the arm's run is named comparison/arm)",
                key="arms",
            )
        folded = name.strip().casefold()
        if folded in seen:
            raise SettingsError(
                f"arm names {seen[folded]!r} and {name!r} are the same name; give each arm a "
                "name of its own",
                key="arms",
            )
        seen[folded] = name
        runnable = callable(getattr(agent, "ainvoke", None)) and callable(
            getattr(agent, "invoke", None)
        )
        if not callable(agent) and not runnable:
            raise SettingsError(
                f"arm {name!r} is a {type(agent).__name__}, not an agent; each arm must be a "
                "function, a coroutine function or a Runnable",
                key="arms",
            )
    return pairs
