"""Price table: bundled data, name resolution, overrides and their errors, cost, what-if."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_agentperf.errors import AgentPerfError, PricingError
from pytest_agentperf.pricing import (
    PRICE_FIELDS,
    ModelPrice,
    PriceTable,
    compute_cost,
    load_prices,
    whatif_cost,
)
from pytest_agentperf.usage import UsageAccumulator, UsageRecord


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_prices(None)


def usage_of(*records: UsageRecord, default_model: str | None = None, calls: int = 1):  # type: ignore[no-untyped-def]
    acc = UsageAccumulator()
    for _ in range(calls):
        acc.add_call(records, default_model)
    return acc.usage(requests=calls)


def test_bundled_table_is_dated_and_sourced(table: PriceTable) -> None:
    assert table.meta["date"] and "litellm" in table.meta["source"].lower()
    assert len(table.rows) >= 50
    for name, row in table.rows.items():
        assert row["input_cost_per_token"] >= 0 and row["output_cost_per_token"] >= 0, name
        assert isinstance(row["litellm_provider"], str), name
        assert set(row) <= {*PRICE_FIELDS, "litellm_provider", "mode"}, name
    providers = {row["litellm_provider"] for row in table.rows.values()}
    assert {"openai", "anthropic", "gemini", "mistral", "groq"} <= providers


@pytest.mark.parametrize(
    ("name", "row"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o-Mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # a snapshot with its own price wins
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219"),  # alias
        ("gemini-2.5-flash", "gemini/gemini-2.5-flash"),
        ("google/gemini-2.5-pro", "gemini/gemini-2.5-pro"),
        ("models/gemini-2.5-pro", "gemini/gemini-2.5-pro"),
        ("mistral-large-latest", "mistral/mistral-large-latest"),
        ("groq/openai/gpt-oss-120b", "groq/openai/gpt-oss-120b"),
        ("llama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile"),
    ],
)
def test_lookup_resolves_aliases_prefixes_and_snapshots(
    table: PriceTable, name: str, row: str
) -> None:
    price = table.lookup(name)
    assert price is not None and price.name == row


@pytest.mark.parametrize(
    "name",
    [
        "unknown",
        "my-private-model",
        "azure/gpt-4o",  # another provider's prices may differ: never borrowed
        "gpt-oss-120b",  # served by several providers at different prices: ambiguous
        "gpt-3.5-turbo-1106",  # a 4-digit snapshot is not stripped (it has its own price)
        "ft:gpt-4o-mini-2024-07-18:acme::abc",
        "",
    ],
)
def test_lookup_unknown_models_is_none(table: PriceTable, name: str) -> None:
    assert table.lookup(name) is None
    assert name not in table


def test_known_prices(table: PriceTable) -> None:
    p = table.lookup("gpt-4o-mini")
    assert p == ModelPrice("gpt-4o-mini", 1.5e-07, 6e-07, 7.5e-08, None, None, "openai")
    c = table.lookup("claude-sonnet-4-5")
    assert c is not None and (c.cache_read, c.cache_creation) == (3e-07, 3.75e-06)
    g = table.lookup("gemini-2.5-flash")
    assert g is not None and g.reasoning == 2.5e-06


def test_model_price_cost_with_cache_and_reasoning() -> None:
    p = ModelPrice("m", input=1.0, output=10.0, cache_read=0.1, cache_creation=2.0, reasoning=20.0)
    # 100 input: 50 cached, 10 written, 40 plain; 30 output: 5 reasoning
    assert p.cost(100, 30, 50, 10, 5) == pytest.approx(
        40 * 1 + 50 * 0.1 + 10 * 2 + 25 * 10 + 5 * 20
    )
    bare = ModelPrice("m", input=1.0, output=10.0)
    assert bare.cost(100, 30, 50, 10, 5) == pytest.approx(100 + 300)


def test_compute_cost_known_model(table: PriceTable) -> None:
    usage = usage_of(UsageRecord(1000, 200, "gpt-4o-mini-2024-07-18", 400), calls=4)
    cost = compute_cost(usage, 4, table)
    one_call = 600 * 1.5e-07 + 400 * 7.5e-08 + 200 * 6e-07
    assert cost.total == pytest.approx(4 * one_call)
    assert cost.per_call == pytest.approx(one_call)
    assert cost.by_model == {"gpt-4o-mini-2024-07-18": pytest.approx(4 * one_call)}
    assert cost.unknown_models == ()


def test_per_call_divides_by_requests_including_failed_calls(table: PriceTable) -> None:
    usage = usage_of(UsageRecord(1000, 0, "gpt-4o"), calls=2)
    cost = compute_cost(usage, 5, table)
    assert cost.total == pytest.approx(2 * 1000 * 2.5e-06)
    assert cost.per_call == pytest.approx(cost.total / 5)  # type: ignore[operator]


def test_compute_cost_unknown_model_is_none_never_zero(table: PriceTable) -> None:
    usage = usage_of(UsageRecord(10, 10, "gpt-4o"), UsageRecord(10, 10, "my-local-llm"))
    cost = compute_cost(usage, 1, table)
    assert cost.total is None and cost.per_call is None
    assert cost.unknown_models == ("my-local-llm",)
    assert cost.by_model["my-local-llm"] is None
    assert cost.by_model["gpt-4o"] == pytest.approx(10 * 2.5e-06 + 10 * 1e-05)


def test_compute_cost_uses_the_default_model_when_calls_name_none(table: PriceTable) -> None:
    usage = usage_of(UsageRecord(100, 10), default_model="gpt-4.1-nano")
    assert compute_cost(usage, 1, table).total == pytest.approx(100 * 1e-07 + 10 * 4e-07)
    nameless = usage_of(UsageRecord(100, 10))
    cost = compute_cost(nameless, 1, table)
    assert cost.total is None and cost.unknown_models == ("unknown",)


def test_compute_cost_of_unknown_usage_is_unknown(table: PriceTable) -> None:
    acc = UsageAccumulator()
    acc.add_call([], "gpt-4o")
    cost = compute_cost(acc.usage(1), 1, table)
    assert cost.total is None and cost.unknown_models == ()


def test_compute_cost_none_table_means_bundled() -> None:
    usage = usage_of(UsageRecord(1000, 0, "gpt-4o"))
    assert compute_cost(usage, 1, None).total == pytest.approx(1000 * 2.5e-06)


def test_whatif_cost(table: PriceTable) -> None:
    usage = usage_of(UsageRecord(1000, 100, "gpt-4o"), UsageRecord(500, 50, "claude-haiku-4-5"))
    per_call = whatif_cost(usage, 1, "gpt-4o-mini", table)
    assert per_call == pytest.approx(1500 * 1.5e-07 + 150 * 6e-07)
    assert whatif_cost(usage, 2, "gpt-4o-mini", table) == pytest.approx(per_call / 2)  # type: ignore[operator]
    assert whatif_cost(usage, 1, "no-such-model", table) is None
    acc = UsageAccumulator()
    assert whatif_cost(acc.usage(1), 1, "gpt-4o", table) is None


# -- overrides -----------------------------------------------------------------------------


def write(tmp_path: Path, data: object, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_override_adds_models_and_updates_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "_meta": {"note": "ours"},
            "_aliases": {"prod-llm": "acme/llm-7b"},
            "acme/llm-7b": {"input_cost_per_token": 1e-07, "output_cost_per_token": 2e-07},
            "gpt-4o": {"output_cost_per_token": 2e-05},
        },
    )
    table = load_prices(path)
    acme = table.lookup("prod-llm")
    assert acme is not None and (acme.input, acme.output) == (1e-07, 2e-07)
    gpt = table.lookup("gpt-4o")
    assert gpt is not None and (gpt.input, gpt.output, gpt.cache_read) == (2.5e-06, 2e-05, 1.25e-06)
    assert table.meta["override"] == str(path)
    # the bundled table itself is unchanged
    bundled = load_prices(None).lookup("gpt-4o")
    assert bundled is not None and bundled.output == 1e-05


def test_override_accepts_a_litellm_row_with_extra_fields(tmp_path: Path) -> None:
    row = {
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 2e-06,
        "input_cost_per_token_batches": 5e-07,
        "max_tokens": 4096,
        "litellm_provider": "acme",
        "mode": "chat",
        "supports_function_calling": True,
    }
    table = load_prices(write(tmp_path, {"acme-1": row}))
    assert table.lookup("acme-1") is not None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[1, 2]", "the top level is a JSON array, not an object"),
        ({"m": 3}, "model 'm': its row is a JSON number"),
        (
            {"m": {"input_cost_per_token": "1e-6", "output_cost_per_token": 1}},
            "must be a non-negative number",
        ),
        (
            {"m": {"input_cost_per_token": -1, "output_cost_per_token": 1}},
            "must be a non-negative number",
        ),
        (
            {"m": {"input_cost_per_token": True, "output_cost_per_token": 1}},
            "must be a non-negative number",
        ),
        ({"m": {"input_cost_per_token": 1e-6}}, "model 'm': missing output_cost_per_token"),
        (
            {"m": {"input_cost_per_tokens": 1e-6, "output_cost_per_token": 1e-6}},
            "did you mean 'input_cost_per_token' instead of 'input_cost_per_tokens'",
        ),
        ({"_aliases": ["x"]}, '"_aliases" must map model names'),
    ],
)
def test_malformed_override_names_the_file_and_the_problem(
    tmp_path: Path, content: object, problem: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(PricingError) as info:
        load_prices(path)
    message = str(info.value)
    assert str(path) in message and problem in message
    assert info.value.path == str(path)
    assert isinstance(info.value, AgentPerfError)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match=r"file not found .*agentperf_prices"):
        load_prices(tmp_path / "nope.json")


def test_update_script_regenerates_the_table_from_a_litellm_copy(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    bundled = json.loads((root / "pytest_agentperf/data/prices.json").read_text())
    source = {
        k: {**v, "max_tokens": 8192, "supports_vision": True}
        for k, v in bundled.items()
        if not k.startswith("_")
    }
    source["gpt-4o"]["output_cost_per_token"] = 9e-06
    del source["o1"]
    source["acme-9"] = {"input_cost_per_token": 1e-07, "output_cost_per_token": 2e-07}
    litellm = write(tmp_path, source, "litellm.json")
    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            sys.executable,
            str(root / "scripts/update_prices.py"),
            str(litellm),
            *("--commit", "abc", "--add", "acme-9", "--output", str(out)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "changed: gpt-4o" in done.stdout and "kept the old row): o1" in done.stdout
    table = json.loads(out.read_text())
    assert table["_meta"]["source_commit"] == "abc" and table["_aliases"] == bundled["_aliases"]
    assert table["gpt-4o"]["output_cost_per_token"] == 9e-06
    assert "max_tokens" not in table["gpt-4o"]
    assert table["o1"] == bundled["o1"] and "acme-9" in table
    assert load_prices(out).lookup("acme-9") is not None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
        ('{"a": ' * 30_000 + "{}" + "}" * 30_000, "JSON nested too deeply"),
        ("7", "the top level is a JSON number, not an object"),
        ("null", "the top level is a JSON null, not an object"),
        ('{"m": {"input_cost_per_token": 1' + "0" * 400 + ', "output_cost_per_token": 0}}', ""),
        ('{"m": {"input_cost_per_token": 1' + "0" * 5000 + "}}", ""),
        ('{"m": {"input_cost_per_token": NaN, "output_cost_per_token": 0}}', "non-negative"),
        ('{"m": {"input_cost_per_token": [1], "output_cost_per_token": 0}}', "got a JSON array"),
        (
            '{"m": {"input_cost_per_token": 3, "output_cost_per_token": 0}}',
            "not per million tokens (did you mean 3e-06?)",
        ),
        ('{"gpt-4o": {"litellm_provider": 7}}', "litellm_provider must be a string"),
    ],
)
def test_hostile_override_files_are_pricing_errors(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(PricingError) as info:
        load_prices(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_an_override_that_is_not_text_or_not_a_file_is_a_pricing_error(tmp_path: Path) -> None:
    binary = tmp_path / "bin.json"
    binary.write_bytes(b'{"m": "\xff"}')
    with pytest.raises(PricingError, match="not UTF-8 text"):
        load_prices(binary)
    with pytest.raises(PricingError, match="not a regular file"):
        load_prices(tmp_path)
    with pytest.raises(PricingError, match="not a regular file"):
        load_prices("/dev/zero")


def test_an_override_larger_than_the_limit_is_refused_without_reading_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_agentperf.pricing as pricing

    monkeypatch.setattr(pricing, "MAX_PRICE_FILE_BYTES", 100)
    path = write(tmp_path, {"m" * 200: {}})
    with pytest.raises(PricingError, match="larger than"):
        load_prices(path)


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"gpt-4o": {"mode": "chat"}}).encode())
    assert load_prices(path).lookup("gpt-4o") is not None


def test_unknown_fields_are_reported_with_a_suggestion_and_litellm_fields_are_not(
    tmp_path: Path,
) -> None:
    row = {
        "output_cost_per_tokens": 1e-3,  # misspelt: would be silently ignored
        "input_price": 1e-6,  # not a field of anyone's schema
        "litellm_providr": "openai",
        # LiteLLM's own fields, which we read no price from: silent
        "input_cost_per_token_above_200k_tokens": 1e-6,
        "input_cost_per_audio_token": 1e-6,
        "output_cost_per_image": 0.04,
        "cache_creation_input_token_cost_above_1hr": 1e-6,
        "search_context_cost_per_query": {"search_context_size_low": 0.01},
        "max_input_tokens": 128000,
        "supports_vision": True,
        "supported_endpoints": ["/v1/chat/completions"],
        "deprecation_date": "2026-01-01",
        "mode": "chat",
        "_comment": "ours",
    }
    path = write(tmp_path, {"gpt-4o": row})
    seen: list[str] = []
    table = load_prices(path, warn=seen.append)
    assert table.lookup("gpt-4o") is not None
    assert len(seen) == 3, seen
    assert seen[0] == (
        f"price file {path}: model 'gpt-4o': unknown field 'output_cost_per_tokens' is "
        "ignored; did you mean 'output_cost_per_token'?"
    )
    assert "'input_price' is ignored; prices are input_cost_per_token, output_cost" in seen[1]
    assert "did you mean 'litellm_provider'?" in seen[2]


def test_unknown_fields_warn_as_agentperf_warnings_by_default(tmp_path: Path) -> None:
    from pytest_agentperf.errors import AgentPerfWarning

    path = write(tmp_path, {"gpt-4o": {"input_cost_per_tokn": 1e-6}})
    with pytest.warns(
        AgentPerfWarning, match="model 'gpt-4o': unknown field 'input_cost_per_tokn'"
    ):
        load_prices(path)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1e400", "must be a positive whole number"),
        (str(10**30), "must be at most 1,000,000,000,000,000"),
        ("9" * 5000, ""),
        ("0", "must be a positive whole number"),
    ],
)
def test_monthly_calls_beyond_bounds_name_the_setting(value: str, fragment: str) -> None:
    from pytest_agentperf.pricing import parse_monthly_calls

    with pytest.raises(PricingError) as info:
        parse_monthly_calls(value)
    assert str(info.value).startswith("agentperf_monthly_calls = ") and fragment in str(info.value)
    assert parse_monthly_calls("1_000_000") == 10**6
