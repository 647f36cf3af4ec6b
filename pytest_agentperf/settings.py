"""Marker and fixture settings: validation, units and defaults."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .budgets import BUDGETS, inverted, judged_early, sample_floor
from .errors import SettingsError
from .results import LoadShape
from .units import Unit, format_seconds, format_value, parse

DEFAULT_REQUESTS = 20
DEFAULT_TIMEOUT = 30.0
ARRIVALS = ("poisson", "constant")
MIN_RATE = 1e-6
"""Slowest open-loop rate: one arrival in about 11.6 days; slower schedules overflow timers."""
MAX_RATE = 1e9
"""Fastest open-loop rate: far beyond what any Python load generator can start."""
MAX_COUNT = 10**9
"""Upper bound of ``requests``, ``concurrency`` and ``warmup`` (also after scaling): above it a
count is a typo, and counts must stay well inside what a float holds exactly."""
MAX_SECONDS = 365 * 24 * 3600.0
"""Upper bound of ``timeout``, ``duration`` and ``window`` (also after scaling): one year."""
_MAX_SECONDS_TEXT = "365 days (one year)"

_LOAD_KEYS = (
    "requests",
    "concurrency",
    "warmup",
    "timeout",
    "duration",
    "rate",
    "arrival",
    "stages",
    "seed",
    "workers",
)
_CONTEXT_KEYS = (
    "model",
    "tolerance",
    "window",
    "abort_on",
    "memory_profile",
    "allow_empty",
    "stage_budgets",
)
STAGE_BUDGETS = (
    "p50",
    "p90",
    "p95",
    "p99",
    "max_latency",
    "mean_latency",
    "error_rate",
    "timeout_rate",
    "min_throughput",
)
"""The budgets ``stage_budgets`` may set: those a stage's own calls measure."""
VALID_KEYS: tuple[str, ...] = _LOAD_KEYS + _CONTEXT_KEYS + tuple(BUDGETS)


@dataclass(frozen=True)
class Settings:
    """Validated settings of one run. Durations in seconds, rates as fractions."""

    requests: int | None = DEFAULT_REQUESTS
    concurrency: int | None = None
    warmup: int = 1
    timeout: float = DEFAULT_TIMEOUT
    duration: float | None = None
    rate: float | None = None
    arrival: str = "poisson"
    seed: int = 0
    model: str | None = None
    tolerance: float | None = None
    window: float | None = None
    abort_on: tuple[str, ...] = ()
    memory_profile: bool = False
    allow_empty: bool = False
    workers: int | None = None
    """Worker processes to split the run over (``workers=N``); None: this process runs it."""
    budgets: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    stages: tuple[tuple[float, float], ...] = ()
    """(duration in seconds, target) of each stage: a rate (open loop) or a number of workers."""
    stage_budgets: tuple[Mapping[str, float], ...] = ()
    """Each stage's own budgets, aligned with ``stages`` (empty when none is set)."""

    @property
    def ramp_start(self) -> float:
        """Where the first stage ramps from: ``rate`` (open loop) or ``concurrency`` (closed
        loop), else 0."""
        start = self.rate if self.rate is not None else self.concurrency
        return float(start or 0)

    @property
    def ramped_rate(self) -> bool:
        """Stages that ramp the arrival rate (open loop)."""
        return bool(self.stages) and self.rate is not None

    @property
    def max_in_flight(self) -> int | None:
        """Cap on calls in flight: concurrency (1 in closed loop), or None (open loop, no cap).
        Closed-loop stages: the most workers any stage reaches."""
        if self.rate is None:
            if self.stages:
                return max(1, math.ceil(max(self.ramp_start, *(t for _, t in self.stages))))
            return self.concurrency or 1
        return self.concurrency

    @property
    def shape(self) -> LoadShape:
        return LoadShape(
            requests=self.requests,
            concurrency=self.max_in_flight,
            rate=self.rate,
            arrival=self.arrival if self.rate is not None else "closed",
            duration=self.duration,
            warmup=self.warmup,
            timeout=self.timeout,
            stages=self.stages,
        )

    def scaled(self, factor: float) -> Settings:
        """These settings with ``requests`` and ``duration`` multiplied by ``factor``; raises
        SettingsError naming ``--agentperf-scale`` when a scaled value leaves its bounds."""
        if factor == 1.0:
            return self
        requests = duration = None
        if self.requests is not None:
            scaled = self.requests * factor
            if not scaled <= MAX_COUNT:  # also catches inf and nan
                raise _scale_error(
                    factor, f"requests={self.requests} becomes {scaled:g}", f"{MAX_COUNT:,}"
                )
            requests = max(1, round(scaled))
        if self.duration is not None:
            duration = self.duration * factor
            if not duration <= MAX_SECONDS:
                raise _scale_error(
                    factor,
                    f"duration={format_seconds(self.duration)} becomes {duration:g} s",
                    _MAX_SECONDS_TEXT,
                )
        stages = tuple((d * factor, target) for d, target in self.stages)
        return replace(self, requests=requests, duration=duration, stages=stages)


def _scale_error(factor: float, what: str, bound: object) -> SettingsError:
    return SettingsError(
        f"--agentperf-scale={factor:g}: {what}, above the most allowed ({bound}); "
        "use a smaller scale",
        key="--agentperf-scale",
    )


def _suggest(key: str) -> str:
    prefixed = [k for k in VALID_KEYS if key.startswith(k + "_") or k.startswith(key + "_")]
    near = prefixed or difflib.get_close_matches(key, VALID_KEYS, n=1, cutoff=0.5)
    return f"; did you mean {near[0]!r}?" if near else f"; valid settings: {', '.join(VALID_KEYS)}"


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(
            f"{key}={value!r}: expected a whole number, got {type(value).__name__}", key=key
        )
    if value < minimum:
        raise SettingsError(f"{key}={value!r}: must be at least {minimum}", key=key)
    if value > MAX_COUNT and key != "seed":
        raise SettingsError(f"{key}={value!r}: must be at most {MAX_COUNT:,}", key=key)
    return value


def _positive(value: Any, unit: Unit, key: str, maximum: float | None = None) -> float:
    """A number of ``unit`` above zero (and at most ``maximum`` seconds, when given)."""
    number = parse(value, unit, key=key)
    if number <= 0:
        raise SettingsError(f"{key}={value!r}: must be greater than zero", key=key)
    if maximum is not None and number > maximum:
        raise SettingsError(f"{key}={value!r}: must be at most {_MAX_SECONDS_TEXT}", key=key)
    return number


def _rate(value: Any) -> float:
    """The open-loop rate: arrivals per second within [MIN_RATE, MAX_RATE]."""
    rate = _positive(value, Unit.PER_SECOND, "rate")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise SettingsError(
            f"rate={value!r}: must be between {MIN_RATE:g}/s and {MAX_RATE:g}/s; at this rate "
            "the arrival schedule cannot be kept (for a run of a few calls, leave rate= out and "
            "use requests= and concurrency=)",
            key="rate",
        )
    return rate


def parse_settings(*layers: Mapping[str, Any]) -> Settings:
    """Merge ``layers`` (later ones win) and validate them into ``Settings``."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    for key in merged:
        if key not in VALID_KEYS and key not in BUDGETS:  # BUDGETS: also entries added later
            raise SettingsError(f"unknown setting {key!r}{_suggest(key)}", key=key)

    kw: dict[str, Any] = {}
    if "requests" in merged:
        kw["requests"] = _int(merged["requests"], "requests", 1)
    if "concurrency" in merged and merged["concurrency"] is not None:
        kw["concurrency"] = _int(merged["concurrency"], "concurrency", 1)
    if merged.get("workers") is not None:
        kw["workers"] = _int(merged["workers"], "workers", 1)
    if "warmup" in merged:
        kw["warmup"] = _int(merged["warmup"], "warmup", 0)
    if "seed" in merged:
        kw["seed"] = _int(merged["seed"], "seed", 0)
    if "timeout" in merged:
        kw["timeout"] = _positive(merged["timeout"], Unit.SECONDS, "timeout", MAX_SECONDS)
    if merged.get("duration") is not None:
        kw["duration"] = _positive(merged["duration"], Unit.SECONDS, "duration", MAX_SECONDS)
        if "requests" not in merged:
            kw["requests"] = None
    if merged.get("rate") is not None:
        if (
            merged.get("stages") is not None
            and parse(merged["rate"], Unit.PER_SECOND, key="rate") == 0
        ):
            kw["rate"] = 0.0  # an open-loop ramp from zero: the stages give every rate
        else:
            kw["rate"] = _rate(merged["rate"])
    if "arrival" in merged:
        arrival = merged["arrival"]
        if arrival not in ARRIVALS:
            raise SettingsError(
                f"arrival={arrival!r}: expected one of {', '.join(map(repr, ARRIVALS))}",
                key="arrival",
            )
        if "rate" not in kw:
            raise SettingsError(
                "arrival= applies to open-loop runs only; give rate= (arrivals per second) too",
                key="arrival",
            )
        kw["arrival"] = arrival
    if merged.get("model") is not None:
        if not isinstance(merged["model"], str) or not merged["model"]:
            raise SettingsError(f"model={merged['model']!r}: expected a model name", key="model")
        kw["model"] = merged["model"]
    if merged.get("tolerance") is not None:
        kw["tolerance"] = parse(merged["tolerance"], Unit.FRACTION, key="tolerance")
    if merged.get("window") is not None:
        kw["window"] = _positive(merged["window"], Unit.SECONDS, "window", MAX_SECONDS)
    if "memory_profile" in merged:
        if not isinstance(merged["memory_profile"], bool):
            raise SettingsError("memory_profile: expected True or False", key="memory_profile")
        kw["memory_profile"] = merged["memory_profile"]
    if "allow_empty" in merged:
        if not isinstance(merged["allow_empty"], bool):
            raise SettingsError("allow_empty: expected True or False", key="allow_empty")
        kw["allow_empty"] = merged["allow_empty"]

    budgets = {}
    for key, value in merged.items():
        if key in BUDGETS and value is not None:
            budgets[key] = parse(value, BUDGETS[key].unit, key=key)
    pair = inverted(budgets)
    if pair is not None:
        low, high = pair
        unit = BUDGETS[low].unit
        raise SettingsError(
            f"{low}={format_value(budgets[low], unit)} is above "
            f"{high}={format_value(budgets[high], unit)}: these budgets contradict each other",
            key=low,
        )
    kw["budgets"] = MappingProxyType(budgets)
    if "requests" not in merged and kw.get("duration") is None:
        # a first test with p95= must not warn about its own default call count
        kw["requests"] = max(DEFAULT_REQUESTS, sample_floor(budgets))
    if merged.get("abort_on") is not None:
        kw["abort_on"] = _abort_on(merged["abort_on"], budgets)
    if merged.get("stages") is not None:
        if kw.get("duration") is not None:
            raise SettingsError(
                "stages= sets the run's length (the sum of the stage durations); leave "
                "duration= out",
                key="stages",
            )
        stages = _stages(merged["stages"], open_loop="rate" in kw)
        kw["stages"] = stages
        kw["duration"] = sum(d for d, _ in stages)
        if "requests" not in merged:
            kw["requests"] = None
    if merged.get("stage_budgets") is not None:
        if "stages" not in kw:
            raise SettingsError(
                "stage_budgets= applies to runs with stages=; set stages= too",
                key="stage_budgets",
            )
        kw["stage_budgets"] = _stage_budgets(merged["stage_budgets"], len(kw["stages"]))
    return Settings(**kw)


def _stages(value: Any, *, open_loop: bool) -> tuple[tuple[float, float], ...]:
    """``stages=`` as (seconds, target) pairs: targets are rates with ``rate=``, else whole
    numbers of workers."""
    example = '[("30s", "10/s"), ("1m", "10/s")]' if open_loop else '[("30s", 10), ("1m", 10)]'
    if not isinstance(value, (list, tuple)) or not value:
        raise SettingsError(
            f"stages={value!r}: expected a non-empty list of (duration, target) stages, "
            f"e.g. {example}",
            key="stages",
        )
    out = []
    for i, stage in enumerate(value):
        where = f"stages[{i}]"
        if isinstance(stage, Mapping):
            if set(stage) != {"duration", "target"}:
                raise SettingsError(
                    f'{where}={stage!r}: expected the keys "duration" and "target"', key="stages"
                )
            duration, target = stage["duration"], stage["target"]
        elif isinstance(stage, (list, tuple)) and len(stage) == 2:
            duration, target = stage
        else:
            raise SettingsError(
                f"{where}={stage!r}: expected (duration, target), e.g. {example}", key="stages"
            )
        seconds = _stage_part(duration, Unit.SECONDS, f"{where} duration")
        if not 0 < seconds <= MAX_SECONDS:
            raise SettingsError(
                f"{where}: duration {duration!r} must be greater than zero and at most "
                f"{_MAX_SECONDS_TEXT}",
                key="stages",
            )
        if open_loop:
            level = _stage_part(target, Unit.PER_SECOND, f"{where} target rate")
            if not 0 <= level <= MAX_RATE:
                raise SettingsError(
                    f"{where}: target {target!r} must be a rate from 0/s to {MAX_RATE:g}/s",
                    key="stages",
                )
        else:
            if isinstance(target, float) and target.is_integer():
                target = int(target)
            if isinstance(target, bool) or not isinstance(target, int) or target < 0:
                raise SettingsError(
                    f"{where}: target {target!r} must be a whole number of workers >= 0 "
                    "(give rate= for targets that are arrival rates)",
                    key="stages",
                )
            if target > MAX_COUNT:
                raise SettingsError(f"{where}: target must be at most {MAX_COUNT:,}", key="stages")
            level = float(target)
        out.append((seconds, level))
    return tuple(out)


def _stage_part(value: Any, unit: Unit, where: str) -> float:
    """``value`` parsed in ``unit``; an error names the stage and the part."""
    try:
        return parse(value, unit, key=where)
    except SettingsError as exc:
        raise SettingsError(str(exc), key="stages") from None


def _stage_budgets(value: Any, n: int) -> tuple[Mapping[str, float], ...]:
    """``stage_budgets=``: a list aligned with the stages (None for a stage without), or a
    dict keyed by stage index (0-based)."""
    if isinstance(value, Mapping):
        per: list[Any] = [None] * n
        for index, budgets in value.items():
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
                raise SettingsError(
                    f"stage_budgets: key {index!r} is not a stage index (0 to {n - 1})",
                    key="stage_budgets",
                )
            per[index] = budgets
    elif isinstance(value, (list, tuple)):
        if len(value) != n:
            raise SettingsError(
                f"stage_budgets: {len(value)} entries for {n} stages; give one per stage "
                "(None for a stage without budgets) or a dict keyed by stage index",
                key="stage_budgets",
            )
        per = list(value)
    else:
        raise SettingsError(
            f"stage_budgets={value!r}: expected a list aligned with stages= or a dict keyed by "
            "stage index",
            key="stage_budgets",
        )
    out: list[Mapping[str, float]] = []
    for i, budgets in enumerate(per):
        if budgets is None:
            out.append(MappingProxyType({}))
            continue
        if not isinstance(budgets, Mapping):
            raise SettingsError(
                f"stage_budgets[{i}]={budgets!r}: expected a dict of budgets", key="stage_budgets"
            )
        parsed = {}
        for key, limit in budgets.items():
            if key not in STAGE_BUDGETS:
                raise SettingsError(
                    f"stage_budgets[{i}]: {key!r} cannot be judged per stage; use one of "
                    f"{', '.join(STAGE_BUDGETS)}",
                    key="stage_budgets",
                )
            parsed[key] = parse(limit, BUDGETS[key].unit, key="stage_budgets")
        out.append(MappingProxyType(parsed))
    return tuple(out)


def _abort_on(value: Any, budgets: Mapping[str, float]) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise SettingsError(
            f'abort_on={value!r}: expected "any" or a list of budget names', key="abort_on"
        )
    if list(names) == ["any"]:
        judged = tuple(name for name in budgets if BUDGETS[name].early is not None)
        if not judged:
            raise SettingsError(
                'abort_on="any" but none of this test\'s budgets can be judged before the run '
                f"ends; set one of {', '.join(judged_early())}",
                key="abort_on",
            )
        return judged
    for name in names:
        if name not in BUDGETS:
            near = difflib.get_close_matches(name, list(BUDGETS), n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise SettingsError(
                f'abort_on: {name!r} is not a budget{hint} ("any" stands alone, not in a list)'
                if name == "any"
                else f"abort_on: unknown budget {name!r}{hint}",
                key="abort_on",
            )
        if name not in budgets:
            raise SettingsError(
                f"abort_on: {name!r} has no budget in this test; set {name}= too", key="abort_on"
            )
        if BUDGETS[name].early is None:
            raise SettingsError(
                f"abort_on: {name!r} can only be judged on the whole run, not early; "
                f"early abort works for {', '.join(judged_early())}",
                key="abort_on",
            )
    return tuple(names)
