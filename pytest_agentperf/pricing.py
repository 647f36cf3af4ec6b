"""Price table loading and cost computation (placeholder until the usage/cost issue fills it)."""

from __future__ import annotations

from .results import Cost, Usage


class PriceTable:
    """Prices per token by model name."""

    def __init__(self, rows: dict[str, dict[str, float]] | None = None) -> None:
        self.rows = rows or {}


def compute_cost(usage: Usage, requests: int, table: PriceTable | None) -> Cost:
    """Cost of ``usage``; unknown (None) where a model has no price."""
    return Cost()
