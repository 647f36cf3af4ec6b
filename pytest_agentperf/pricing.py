"""Price table loading and cost computation.

The bundled table (``data/prices.json``) uses LiteLLM's field names, in USD per token; a
JSON file of the same schema (the ini option ``agentperf_prices``) is merged over it. A model
with no price is reported as unknown (None), never as zero or as another model's price.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PricingError

if TYPE_CHECKING:  # results loads numpy: the plugin loads this module at start-up without it
    from .results import Cost, ModelUsage, Usage

INPUT = "input_cost_per_token"
OUTPUT = "output_cost_per_token"
CACHE_READ = "cache_read_input_token_cost"
CACHE_CREATION = "cache_creation_input_token_cost"
REASONING = "output_cost_per_reasoning_token"
PRICE_FIELDS = (INPUT, OUTPUT, CACHE_READ, CACHE_CREATION, REASONING)

_META = "_meta"
_ALIASES = "_aliases"
# Prefixes that name the same API (and prices) as the rows' ``litellm_provider``.
_PROVIDER_SYNONYMS = {"google": "gemini", "gemini": "gemini", "mistralai": "mistral"}
# Dated snapshot suffixes: OpenAI ``-2024-07-18``, Anthropic ``-20250929``, Vertex ``@001``.
_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@[0-9a-z.-]+)$")


@dataclass(frozen=True)
class ModelPrice:
    """Prices of one model in USD per token; cache/reasoning prices None when not listed."""

    name: str
    input: float
    output: float
    cache_read: float | None = None
    cache_creation: float | None = None
    reasoning: float | None = None
    provider: str | None = None

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float:
        """Dollar cost of these tokens; cached and reasoning tokens are parts of the totals."""
        cached = min(cached_input_tokens, input_tokens)
        created = min(cache_creation_input_tokens, input_tokens - cached)
        plain_in = input_tokens - cached - created
        reasoning = min(reasoning_tokens, output_tokens)
        return (
            plain_in * self.input
            + cached * (self.input if self.cache_read is None else self.cache_read)
            + created * (self.input if self.cache_creation is None else self.cache_creation)
            + (output_tokens - reasoning) * self.output
            + reasoning * (self.output if self.reasoning is None else self.reasoning)
        )


class PriceTable:
    """Prices per token by model name, with alias, provider-prefix and snapshot resolution."""

    def __init__(
        self,
        rows: dict[str, dict[str, Any]] | None = None,
        *,
        aliases: dict[str, str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.rows: dict[str, dict[str, Any]] = dict(rows or {})
        self.aliases: dict[str, str] = dict(aliases or {})
        self.meta: dict[str, Any] = dict(meta or {})
        self._lower = {k.lower(): k for k in self.rows}
        self._alias_lower = {k.lower(): v for k, v in self.aliases.items()}
        tails: dict[str, list[str]] = {}
        for key in self.rows:
            if "/" in key:
                tails.setdefault(key.rsplit("/", 1)[1].lower(), []).append(key)
        self._tails = tails
        self._cache: dict[str, ModelPrice | None] = {}

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None

    def lookup(self, model: str) -> ModelPrice | None:
        """The price row of ``model``, or None when it has no price.

        Tries, in order: the exact name (case-insensitive), an alias, a provider prefix whose
        provider matches the row (``openai/gpt-4o``), a unique provider-qualified row for a bare
        name (``gemini-2.5-pro``), and the name with its dated snapshot suffix removed
        (``gpt-4o-mini-2024-07-18``). Never guesses between rows of different prices.
        """
        try:
            return self._cache[model]
        except KeyError:
            pass
        key = self._resolve(model.strip(), depth=0)
        found = None if key is None else self._price(key)
        self._cache[model] = found
        return found

    def _resolve(self, name: str, depth: int) -> str | None:
        if depth > 4 or not name:
            return None
        low = name.lower()
        if low in self._lower:
            return self._lower[low]
        if low in self._alias_lower:
            return self._resolve(self._alias_lower[low], depth + 1)
        if low.startswith("models/"):
            return self._resolve(name[len("models/") :], depth + 1)
        if "/" in name:
            prefix, rest = name.split("/", 1)
            key = self._resolve(rest, depth + 1)
            if key is not None:
                provider = str(self.rows[key].get("litellm_provider", "")).lower()
                want = _PROVIDER_SYNONYMS.get(prefix.lower(), prefix.lower())
                if provider == want:
                    return key
            return None
        tails = self._tails.get(low)
        if tails is not None and len(tails) == 1:
            return tails[0]
        if tails is not None and len({self._price_tuple(t) for t in tails}) == 1:
            return tails[0]
        if tails is None:
            stripped = _SNAPSHOT.sub("", name)
            if stripped != name:
                return self._resolve(stripped, depth + 1)
        return None

    def _price_tuple(self, key: str) -> tuple[Any, ...]:
        row = self.rows[key]
        return tuple(row.get(f) for f in PRICE_FIELDS)

    def _price(self, key: str) -> ModelPrice | None:
        row = self.rows[key]
        inp, out = _num(row.get(INPUT)), _num(row.get(OUTPUT))
        if inp is None or out is None:
            return None
        provider = row.get("litellm_provider")
        return ModelPrice(
            name=key,
            input=inp,
            output=out,
            cache_read=_num(row.get(CACHE_READ)),
            cache_creation=_num(row.get(CACHE_CREATION)),
            reasoning=_num(row.get(REASONING)),
            provider=provider if isinstance(provider, str) else None,
        )


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@lru_cache(maxsize=1)
def _bundled_raw() -> str:
    return resources.files("pytest_agentperf").joinpath("data/prices.json").read_text("utf-8")


def _split(
    data: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, Any]]:
    rows = {k: v for k, v in data.items() if not k.startswith("_") and k != "sample_spec"}
    aliases = data.get(_ALIASES) or {}
    meta = data.get(_META) or {}
    return rows, aliases, meta


def load_prices(override_path: str | Path | None = None) -> PriceTable:
    """The bundled price table, with the rows of ``override_path`` (same schema) merged over it.

    A row of the override updates the fields of the bundled row of the same name, or adds a
    model (then ``input_cost_per_token`` and ``output_cost_per_token`` are required). Raises
    ``PricingError`` naming the file and the problem when it cannot be used.
    """
    rows, aliases, meta = _split(json.loads(_bundled_raw()))
    rows = {k: dict(v) for k, v in rows.items()}
    aliases = dict(aliases)
    meta = dict(meta)
    if override_path is not None:
        path = Path(override_path)
        o_rows, o_aliases = _read_override(path, rows)
        for name, row in o_rows.items():
            rows[name] = {**rows.get(name, {}), **row}
        aliases.update(o_aliases)
        meta["override"] = str(path)
    return PriceTable(rows, aliases=aliases, meta=meta)


def _read_override(
    path: Path, bundled: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    def fail(problem: str) -> PricingError:
        return PricingError(
            f"price file {path}: {problem}. Expected a JSON object mapping model names to "
            f'rows like {{"my-model": {{"{INPUT}": 1e-06, "{OUTPUT}": 2e-06}}}} (USD per token).',
            path=str(path),
        )

    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise fail("file not found (check the ini option agentperf_prices)") from None
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise fail(f"the top level is a JSON {type(data).__name__}, not an object")
    rows, aliases, _ = _split(data)
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise fail('"_aliases" must map model names to model names (strings)')
    for name, row in rows.items():
        if not isinstance(row, dict):
            raise fail(f"model {name!r}: its row is a JSON {type(row).__name__}, not an object")
        for field in PRICE_FIELDS:
            if field in row:
                v = row[field]
                if _num(v) is None or not math.isfinite(float(v)) or float(v) < 0:
                    raise fail(f"model {name!r}: {field} must be a non-negative number, got {v!r}")
        if name not in bundled:
            missing = [f for f in (INPUT, OUTPUT) if f not in row]
            if missing:
                hint = ""
                for m in missing:
                    near = difflib.get_close_matches(m, [str(k) for k in row], n=1, cutoff=0.75)
                    if near:
                        hint = f" (did you mean {m!r} instead of {near[0]!r}?)"
                raise fail(f"model {name!r}: missing {' and '.join(missing)}{hint}")
    return rows, aliases


@lru_cache(maxsize=1)
def _default_table() -> PriceTable:
    return load_prices(None)


def _model_cost(price: ModelPrice, m: ModelUsage) -> float:
    return price.cost(
        m.input_tokens,
        m.output_tokens,
        m.cached_input_tokens,
        m.cache_creation_input_tokens,
        m.reasoning_tokens,
    )


def compute_cost(usage: Usage, requests: int, table: PriceTable | None) -> Cost:
    """Cost of ``usage`` (``table`` None: the bundled table); unknown (None) where a model has
    no price. ``per_call`` is the total divided by ``requests`` (failed calls included)."""
    from .results import Cost

    if not usage.known or not usage.by_model:
        return Cost()
    table = table if table is not None else _default_table()
    by_model: dict[str, float | None] = {}
    unknown: list[str] = []
    for name, m in usage.by_model.items():
        price = table.lookup(name)
        if price is None:
            by_model[name] = None
            unknown.append(name)
        else:
            by_model[name] = _model_cost(price, m)
    if unknown:
        return Cost(total=None, per_call=None, by_model=by_model, unknown_models=tuple(unknown))
    total = sum(v for v in by_model.values() if v is not None)
    per_call = total / requests if requests > 0 else None
    return Cost(total=total, per_call=per_call, by_model=by_model)


def whatif_cost(usage: Usage, requests: int, model: str, table: PriceTable | None) -> float | None:
    """Cost per call had every call's tokens (of every model) gone to ``model``.

    None when the usage is unknown, ``requests`` is 0, or ``model`` has no price. Multiply by
    ``requests`` for the run's total, or by a monthly call count for a projection.
    """
    if not usage.known or requests <= 0:
        return None
    table = table if table is not None else _default_table()
    price = table.lookup(model)
    if price is None:
        return None
    return sum(_model_cost(price, m) for m in usage.by_model.values()) / requests


def suggest(table: PriceTable, model: str, n: int = 3) -> list[str]:
    """Priced model names closest to ``model`` (for "did you mean" messages)."""
    names = list(table.rows) + list(table.aliases)
    bare = {name.rsplit("/", 1)[-1]: name for name in names}
    near = difflib.get_close_matches(model, list(bare), n=n, cutoff=0.6)
    return [bare[b] for b in near]


def parse_whatif(value: str | None, table: PriceTable) -> tuple[str, ...]:
    """The models of ``--agentperf-cost-whatif=MODEL[,MODEL...]``; each must have a price."""
    if not value:
        return ()
    models = tuple(dict.fromkeys(m.strip() for m in value.split(",") if m.strip()))
    for model in models:
        if table.lookup(model) is None:
            near = suggest(table, model)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise PricingError(
                f"--agentperf-cost-whatif: no price for model {model!r}{hint}; add it to the "
                "JSON file named by the ini option agentperf_prices"
            )
    return models


def parse_monthly_calls(value: str | int | None) -> int | None:
    """The ini option ``agentperf_monthly_calls``: a positive whole number (``_`` and ``,``
    allowed as separators), or empty for none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip().replace("_", "").replace(",", "")
    try:
        calls = int(text)
    except ValueError:
        calls = 0
    if calls <= 0:
        raise PricingError(
            f"agentperf_monthly_calls = {value!r}: must be a positive whole number of calls "
            "per month, e.g. agentperf_monthly_calls = 1000000"
        )
    return calls


def cost_projection(
    usage: Usage,
    requests: int,
    cost: Cost,
    table: PriceTable | None,
    *,
    whatif: Sequence[str] = (),
    monthly_calls: int | None = None,
) -> dict[str, Any]:
    """What-if costs per call on other models, and the projected monthly cost (None where a
    price or the usage is unknown); empty when neither was asked for."""
    out: dict[str, Any] = {}
    if whatif:
        out["whatif"] = {m: whatif_cost(usage, requests, m, table) for m in whatif}
    if monthly_calls:
        out["monthly_calls"] = monthly_calls
        out["monthly_cost"] = None if cost.per_call is None else cost.per_call * monthly_calls
    return out
