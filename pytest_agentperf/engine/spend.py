"""The spend guard: tokens and dollars counted as calls finish, stopping a run the moment a
``total_tokens`` or ``total_cost`` budget is crossed.

Spend only grows, so crossing a spend budget is certain, not a matter of confidence: the run
stops at once in every mode, whether or not the budget is listed in ``abort_on``. The meter
is fed by ``CallLog.record`` (the path of every call that recorded usage) on whichever thread
or task ran the call, hence the lock; calls that recorded nothing never reach it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from ..pricing import PriceTable, table_or_default
from ..units import Unit, format_value
from ..usage import UNNAMED_MODEL, UsageRecord

SPEND_BUDGETS = ("total_tokens", "total_cost")
"""The budgets the spend guard judges live."""


class SpendMeter:
    """Running totals of a run's tokens and cost; calls ``trip`` once with the reason when a
    limit is crossed. Cost counts only priced models: a model without a price leaves the cost
    unknown, which the budget check at the end of the run reports."""

    __slots__ = ("_limits", "_lock", "_prices", "_trip", "cost", "priced", "tokens", "tripped")

    def __init__(
        self,
        limits: Mapping[str, float],
        prices: PriceTable | None,
        trip: Callable[[str], None],
    ) -> None:
        self._limits = {k: v for k, v in limits.items() if k in SPEND_BUDGETS}
        self._prices = table_or_default(prices) if "total_cost" in self._limits else None
        self._trip = trip
        self._lock = threading.Lock()
        self.tokens = 0
        self.cost = 0.0
        self.priced = True
        """False once a call used a model without a price: the live cost is then unknown."""
        self.tripped: str | None = None

    @classmethod
    def of(
        cls,
        budgets: Mapping[str, float],
        prices: PriceTable | None,
        trip: Callable[[str], None],
    ) -> SpendMeter | None:
        """A meter for ``budgets``, or None when none of them is a spend budget."""
        if not any(name in budgets for name in SPEND_BUDGETS):
            return None
        return cls(budgets, prices, trip)

    def add(self, records: Iterable[UsageRecord], model: str | None) -> None:
        """Count one finished call's usage; stop the run if a limit is now crossed."""
        tokens = 0
        cost = 0.0
        priced = True
        for r in records:
            tokens += r.input_tokens + r.output_tokens
            if self._prices is not None:
                one = self._prices.record_cost(r, model or UNNAMED_MODEL)
                if one is None:
                    priced = False
                else:
                    cost += one
        with self._lock:
            self.tokens += tokens
            self.cost += cost
            self.priced = self.priced and priced
            if self.tripped is not None:
                return
            why = self._crossed()
            if why is None:
                return
            self.tripped = why
        self._trip(why)

    def _crossed(self) -> str | None:
        limit = self._limits.get("total_tokens")
        if limit is not None and self.tokens > limit:
            return (
                f"spend guard: total tokens {format_value(self.tokens, Unit.COUNT)} > budget "
                f"{format_value(limit, Unit.COUNT)}"
            )
        limit = self._limits.get("total_cost")
        if limit is not None and self.priced and self.cost > limit:
            return (
                f"spend guard: total cost {format_value(self.cost, Unit.USD)} > budget "
                f"{format_value(limit, Unit.USD)}"
            )
        return None
