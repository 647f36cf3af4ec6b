"""Price table loading and cost computation.

The bundled table (``data/prices.json``) uses LiteLLM's field names, in USD per token; a
JSON file of the same schema (the ini option ``agentperf_prices``) is merged over it. A model
with no price is reported as unknown (None), never as zero or as another model's price.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import AgentPerfWarning, PricingError

if TYPE_CHECKING:  # results loads numpy: the plugin loads this module at start-up without it
    from .results import Cost, ModelUsage, Usage
    from .usage import UsageRecord

INPUT = "input_cost_per_token"
OUTPUT = "output_cost_per_token"
CACHE_READ = "cache_read_input_token_cost"
CACHE_CREATION = "cache_creation_input_token_cost"
REASONING = "output_cost_per_reasoning_token"
PRICE_FIELDS = (INPUT, OUTPUT, CACHE_READ, CACHE_CREATION, REASONING)

MAX_PRICE_FILE_BYTES = 64 * 2**20
"""A price file larger than this is refused (LiteLLM's full table is about 1.5 MB)."""
MAX_PRICE_PER_TOKEN = 1.0
"""A price per token above this (USD) is refused: most likely a price per million tokens."""
MAX_MONTHLY_CALLS = 10**15
"""Upper bound of the ini option ``agentperf_monthly_calls``."""

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

    def to_plain(self) -> dict[str, Any]:
        """The table as plain data (the JSON it was read from), to send to a worker process."""
        return {"rows": self.rows, "aliases": self.aliases, "meta": self.meta}

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> PriceTable:
        """The table ``to_plain`` gave."""
        return cls(dict(data["rows"]), aliases=dict(data["aliases"]), meta=dict(data["meta"]))

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None

    def record_cost(self, record: UsageRecord, model: str) -> float | None:
        """The cost of one recorded LLM call (its own model, else ``model``, the call's or the
        run's); None when that model has no price."""
        price = self.lookup(record.model or model)
        if price is None:
            return None
        return price.cost(
            record.input_tokens,
            record.output_tokens,
            record.cached_input_tokens,
            record.cache_creation_input_tokens,
            record.reasoning_tokens,
        )

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
    try:
        return float(value)
    except OverflowError:  # a JSON integer too large for a float
        return None


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


def load_prices(
    override_path: str | Path | None = None, *, warn: Callable[[str], None] | None = None
) -> PriceTable:
    """The bundled price table, with the rows of ``override_path`` (same schema) merged over it.

    A row of the override updates the fields of the bundled row of the same name, or adds a
    model (then ``input_cost_per_token`` and ``output_cost_per_token`` are required). Raises
    ``PricingError`` naming the file and the problem when it cannot be used, whatever it holds.
    A field of a row that is neither ours nor LiteLLM's (most likely a misspelt price, which
    would otherwise be ignored) is reported through ``warn`` (default: an ``AgentPerfWarning``).
    """
    rows, aliases, meta = _split(json.loads(_bundled_raw()))
    rows = {k: dict(v) for k, v in rows.items()}
    aliases = dict(aliases)
    meta = dict(meta)
    if override_path is not None:
        path = Path(override_path)
        o_rows, o_aliases = _read_override(path, rows)
        for message in unknown_field_warnings(path, o_rows):
            if warn is None:
                warnings.warn(AgentPerfWarning(message), stacklevel=2)
            else:
                warn(message)
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

    data = _read_json(path, fail)
    if not isinstance(data, dict):
        raise fail(f"the top level is a JSON {_json_type(data)}, not an object")
    rows, aliases, _ = _split(data)
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise fail('"_aliases" must map model names to model names (strings)')
    for name, row in rows.items():
        if not isinstance(row, dict):
            raise fail(f"model {name!r}: its row is a JSON {_json_type(row)}, not an object")
        for field in PRICE_FIELDS:
            if field in row:
                problem = _price_problem(row[field])
                if problem:
                    raise fail(f"model {name!r}: {field} {problem}")
        provider = row.get("litellm_provider")
        if provider is not None and not isinstance(provider, str):
            raise fail(
                f"model {name!r}: litellm_provider must be a string, "
                f"got a JSON {_json_type(provider)}"
            )
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


def _read_json(path: Path, fail: Callable[[str], PricingError]) -> Any:
    """The JSON value in ``path``; any problem (missing, not a regular file, too large, not
    UTF-8, malformed, nested too deeply) is a ``PricingError`` made by ``fail``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise fail("file not found (check the ini option agentperf_prices)") from None
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise fail("not a regular file")
    try:
        with path.open("rb") as f:  # read at most one byte past the limit: never all of it
            raw = f.read(MAX_PRICE_FILE_BYTES + 1)
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_PRICE_FILE_BYTES:
        raise fail(f"larger than {MAX_PRICE_FILE_BYTES // 2**20} MiB, too large for a price file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise fail("JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise fail(f"invalid JSON: {exc}") from None


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _price_problem(value: Any) -> str:
    """Why ``value`` is not a usable price per token, or "" when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a non-negative number (USD per token), got a JSON {_json_type(value)}"
    number = _num(value)
    if number is None or not math.isfinite(number) or number < 0:
        return f"must be a non-negative number, got {value!r}"
    if number > MAX_PRICE_PER_TOKEN:
        return (
            f"is {value!r} USD per token, above {MAX_PRICE_PER_TOKEN:g}; prices are per token, "
            f"not per million tokens (did you mean {number / 1e6:g}?)"
        )
    return ""


# LiteLLM fields (and families of fields) we read no price from but accept silently.
_KNOWN_FIELDS = frozenset(
    (
        "litellm_provider",
        "mode",
        "source",
        "deprecation_date",
        "metadata",
        "tiered_pricing",
        "provider_specific_entry",
        "tool_use_system_prompt_tokens",
    )
)
_KNOWN_PREFIXES = ("supports_", "supported_", "max_", "_")
_LITELLM_COST = re.compile(r"[a-z0-9_]+_cost_per_[a-z0-9_]+|[a-z0-9_]+_cost")


def _field_known(field: str) -> bool:
    if field in PRICE_FIELDS or field in _KNOWN_FIELDS or field.startswith(_KNOWN_PREFIXES):
        return True
    if any(field.startswith(f + "_") for f in PRICE_FIELDS):  # _above_200k_tokens, _batches
        return True
    # one of LiteLLM's many other cost fields (per image, per audio token, per second, ...),
    # unless it is a near-miss of a field we read ("input_cost_per_tokens")
    return bool(_LITELLM_COST.fullmatch(field)) and not _near_price_field(field)


def _near_price_field(field: str) -> list[str]:
    return difflib.get_close_matches(field, (*PRICE_FIELDS, "litellm_provider"), n=1, cutoff=0.92)


def unknown_field_warnings(path: str | Path, rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One message per field of a price file's row that is neither one we read nor one of
    LiteLLM's: it is ignored, and most likely a misspelt price."""
    out = []
    for name, row in rows.items():
        for field in row:
            if not isinstance(field, str) or _field_known(field):
                continue
            near = _near_price_field(field) or difflib.get_close_matches(
                field, (*PRICE_FIELDS, *_KNOWN_FIELDS), n=1, cutoff=0.6
            )
            hint = (
                f"; did you mean {near[0]!r}?"
                if near
                else f"; prices are {', '.join(PRICE_FIELDS)}"
            )
            out.append(
                f"price file {path}: model {name!r}: unknown field {field!r} is ignored{hint}"
            )
    return out


@lru_cache(maxsize=1)
def _default_table() -> PriceTable:
    return load_prices(None)


def table_or_default(table: PriceTable | None) -> PriceTable:
    """``table``, or the bundled prices when it is None."""
    return table if table is not None else _default_table()


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
    if calls > MAX_MONTHLY_CALLS:
        raise PricingError(
            f"agentperf_monthly_calls = {value!r}: must be at most {MAX_MONTHLY_CALLS:,} "
            "calls per month"
        )
    return calls


@dataclass(frozen=True)
class CostProjection:
    """What a run's tokens would cost on other models, and per month (``--agentperf-cost-whatif``,
    ini ``agentperf_monthly_calls``); None where a price or the usage is unknown."""

    whatif: Mapping[str, float | None] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    """Cost per call with the same tokens on each what-if model."""
    monthly_calls: int | None = None
    monthly_cost: float | None = None


def cost_projection(
    usage: Usage,
    requests: int,
    cost: Cost,
    table: PriceTable | None,
    *,
    whatif: Sequence[str] = (),
    monthly_calls: int | None = None,
) -> CostProjection | None:
    """What-if costs per call on other models, and the projected monthly cost (None where a
    price or the usage is unknown); None when neither was asked for."""
    if not whatif and not monthly_calls:
        return None
    return CostProjection(
        whatif=MappingProxyType({m: whatif_cost(usage, requests, m, table) for m in whatif}),
        monthly_calls=monthly_calls or None,
        monthly_cost=(
            None if cost.per_call is None or not monthly_calls else cost.per_call * monthly_calls
        ),
    )
