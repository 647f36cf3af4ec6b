"""Splitting one run's load into shards, one per worker.

Each shard gets its part of ``requests``, ``concurrency`` and ``rate``, so that the workers
together make the run the settings describe:

- ``requests`` and ``concurrency`` are divided as evenly as whole numbers allow (the first
  shards take one more); ``duration`` and ``timeout`` are the same in every shard.
- Poisson arrivals: shard ``k`` draws its own Poisson stream of ``rate / n`` from its own seed.
  Independent Poisson streams superpose to one Poisson stream of the summed rate, so the merged
  arrivals have the requested rate and distribution.
- Constant arrivals: every shard keeps ``rate / n`` and shard ``k`` starts ``k / rate`` after
  the common start, so the merged stream is the constant one, each arrival in turn going to
  the next worker (round robin).
- Inputs: call ``j`` of the run would take input ``j % len(inputs)``; with calls dealt round
  robin, shard ``k`` makes calls ``k, k + n, k + 2n, ...``, so it gets those inputs in that
  order (as many as repeat), and every input keeps its share of the calls.
- Spend budgets (``total_cost``, ``total_tokens``) are divided: each worker's spend guard
  stops it at its share, so the workers together stay within the budget.
- Early abort: the budgets named in ``abort_on`` go to every worker whole; each worker judges
  them live on its own calls (a sample of the run's), and one that aborts stops the run.
- Stages: each stage's target is divided as the rate or the concurrency is.
- ``warmup`` calls are per process (each worker warms its own connections and caches): each
  shard makes all of them, before the common start.

A run never has more shards than it has calls in flight (its concurrency cap; closed loop
without ``concurrency`` that is one) or calls (``requests``): a shard must make at least one
call at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..engine.spend import SPEND_BUDGETS
from ..settings import Settings


@dataclass(frozen=True)
class Shard:
    """One worker's part of a run."""

    index: int
    settings: Settings
    inputs: Sequence[Any] | None
    start_offset: float = 0.0
    """Seconds after the common start at which this shard starts (constant arrivals)."""


def shard_count(settings: Settings, workers: int) -> int:
    """How many of ``workers`` the run can use: at most one per call in flight and per call."""
    n = workers
    cap = settings.max_in_flight
    if cap is not None:
        n = min(n, cap)
    if settings.requests is not None:
        n = min(n, settings.requests)
    return max(1, n)


def _part(total: int, n: int, k: int) -> int:
    """Shard ``k``'s share of ``total`` split ``n`` ways (the first ``total % n`` take one more)."""
    return total // n + (1 if k < total % n else 0)


def shard_seed(seed: int, k: int) -> int:
    """An independent seed for shard ``k`` of a run seeded ``seed`` (its own Poisson stream)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint32)[0])


def shard_inputs(inputs: Sequence[Any], n: int, k: int) -> list[Any]:
    """The inputs of calls ``k, k + n, k + 2n, ...``: one period of them, to be cycled."""
    size = len(inputs)
    period = size // math.gcd(size, n)
    return [inputs[(k + i * n) % size] for i in range(period)]


def _stage_share(target: float, open_loop: bool, n: int, k: int) -> float:
    """Shard ``k``'s part of a stage's target: a rate divided ``n`` ways, or a number of
    closed-loop workers split as whole numbers (``_part``)."""
    return target / n if open_loop else float(_part(round(target), n, k))


def split(settings: Settings, inputs: Sequence[Any] | None, n: int) -> list[Shard]:
    """The ``n`` shards of a run (``n`` from ``shard_count``)."""
    shards = []
    for k in range(n):
        changes: dict[str, Any] = {"workers": None}
        if settings.requests is not None:
            changes["requests"] = _part(settings.requests, n, k)
        if settings.concurrency is not None:
            changes["concurrency"] = _part(settings.concurrency, n, k)
        # each worker guards its share of a spend budget live, so together they never spend
        # more than the budget; the whole run is judged against it at the end as ever
        budgets = {
            key: limit / n for key, limit in settings.budgets.items() if key in SPEND_BUDGETS
        }
        # each worker judges abort_on live on its own calls, against the whole budget (a rate,
        # a latency: its share of the calls is a sample of the same run)
        for key in settings.abort_on:
            if key in settings.budgets and key not in SPEND_BUDGETS:
                budgets[key] = settings.budgets[key]
        changes["budgets"] = budgets
        changes["stage_budgets"] = ()  # judged on the merged calls, by the controller
        if settings.stages:
            changes["stages"] = tuple(
                (seconds, _stage_share(target, settings.rate is not None, n, k))
                for seconds, target in settings.stages
            )
        offset = 0.0
        if settings.rate is not None:
            changes["rate"] = settings.rate / n
            if settings.arrival == "constant" and settings.rate > 0:
                offset = k / settings.rate
            else:
                changes["seed"] = shard_seed(settings.seed, k)
        part = None if inputs is None else shard_inputs(inputs, n, k) if n > 1 else list(inputs)
        shards.append(Shard(k, replace(settings, **changes), part, offset))
    return shards
