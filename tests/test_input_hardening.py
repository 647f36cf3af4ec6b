"""End-to-end: hostile or careless input (run names, markers, numbers, price files) ends in a
clear error naming what to change, never a traceback from plugin code or an INTERNALERROR."""

from __future__ import annotations

import json

import pytest
from conftest import INI

pytest_plugins = ["pytester"]


def test_a_bad_run_name_fails_its_call_and_the_other_runs_are_saved(
    agents: pytest.Pytester,
) -> None:
    agents.makepyfile(
        r"""
        import pytest
        from agents import fast_priced

        @pytest.mark.parametrize(
            "name", [123, b"bytes", "lone \udc80 surrogate", "", "two\nlines", "tab\there"]
        )
        def test_bad(agentperf, name):
            agentperf.run(fast_priced, requests=2, name=name)

        def test_good(agentperf):
            agentperf.run(fast_priced, requests=3, name="fine name – ünïcode")
        """
    )
    result = agents.runpytest("--agentperf-baseline", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=6)
    out = result.stdout.str()
    for fragment in (
        "name=123: a run name must be a str, got int",
        "name=b'bytes': a run name must be a str, got bytes",
        "lone surrogate",
        "name='': a run name must not be empty",
        "must not hold control characters",
    ):
        assert fragment in out
    assert out.count("SettingsError") >= 6
    assert "INTERNALERROR" not in out and "BaselineError" not in out
    saved = json.loads((agents.path / ".agentperf" / "baseline.json").read_text("utf-8"))
    assert "fine name – ünïcode" in json.dumps(saved, ensure_ascii=False)


def test_a_params_marker_is_nearer_than_the_functions(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_priced

        pytestmark = pytest.mark.agent_perf(requests=9, warmup=0)

        @pytest.mark.agent_perf(requests=5, concurrency=2)
        @pytest.mark.parametrize(
            "want",
            [
                pytest.param((3, 2), marks=pytest.mark.agent_perf(requests=3), id="param"),
                pytest.param((5, 2), id="plain"),
            ],
        )
        def test_param(agentperf, want):
            r = agentperf.run(fast_priced)
            assert (r.requests, r.shape.concurrency, r.shape.warmup) == (*want, 0)

        @pytest.mark.parametrize(
            "x", [pytest.param(1, marks=pytest.mark.agent_perf(requests="many"))]
        )
        @pytest.mark.agent_perf(requests=4)
        def test_bad_param_marker(agentperf, x):
            agentperf.run(fast_priced)
        """
    )
    result = agents.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_bad_param_marker*invalid*requests='many'*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--agentperf-scale=1e308", "--agentperf-scale=1e+308: must be at most 1e+06"),
        ("--agentperf-tolerance=5", 'tolerance*did you mean "5%"?'),
        ("--agentperf-tolerance=150%", "tolerance='150%': must be a fraction between 0 and 1*"),
    ],
)
def test_absurd_numbers_on_the_command_line_are_usage_errors(
    agents: pytest.Pytester, option: str, message: str
) -> None:
    agents.makepyfile("def test_plain():\n    pass\n")
    result = agents.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_scale_that_takes_a_count_past_its_bound_fails_the_run_naming_the_scale(
    agents: pytest.Pytester,
) -> None:
    agents.makepyfile(
        """
        from agents import fast_priced

        def test_huge(agentperf):
            agentperf.run(fast_priced, requests=10**6, duration="7200h")
        """
    )
    result = agents.runpytest("--agentperf-scale=1e5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SettingsError: --agentperf-scale=100000: requests=1000000*"])
    assert "OverflowError" not in result.stdout.str()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "must be a positive whole number"),
        ("1" + "0" * 30, "must be at most 1,000,000,000,000,000 calls per month"),
        ("-5", "must be a positive whole number"),
    ],
)
def test_an_absurd_monthly_call_count_is_a_usage_error(
    agents: pytest.Pytester, value: str, message: str
) -> None:
    agents.makeini(INI + f"agentperf_monthly_calls = {value}\n")
    agents.makepyfile("def test_plain():\n    pass\n")
    result = agents.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*agentperf_monthly_calls*{message}*"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"m": ' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
        ("\xff\xfe not text", "not UTF-8"),
        ('"just a string"', "the top level is a JSON string"),
        ('{"m": {"input_cost_per_token": 1' + "0" * 400 + "}}", "non-negative number"),
        ('{"m": {"input_cost_per_token": 2.5, "output_cost_per_token": 10}}', "did you mean"),
        ('{"gpt-4o": {"litellm_provider": ["x"]}}', "litellm_provider must be a string"),
    ],
)
def test_any_price_file_ends_in_a_usage_error_naming_it(
    agents: pytest.Pytester, content: str, problem: str
) -> None:
    path = agents.path / "prices.json"
    if content.startswith("\xff"):
        path.write_bytes(b"\xff\xfe not text")
    else:
        path.write_text(content, "utf-8")
    agents.makeini(INI + "agentperf_prices = prices.json\n")
    agents.makepyfile("def test_plain():\n    pass\n")
    result = agents.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "price file" in err and str(path) in err and problem in err
    assert "INTERNALERROR" not in err + result.stdout.str()
    assert "Traceback" not in err


def test_a_price_file_that_is_a_directory_is_a_usage_error(agents: pytest.Pytester) -> None:
    (agents.path / "prices").mkdir()
    agents.makeini(INI + "agentperf_prices = prices\n")
    agents.makepyfile("def test_plain():\n    pass\n")
    result = agents.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*price file *prices: not a regular file*"])


def test_an_unknown_field_on_a_model_is_a_warning_with_a_suggestion(
    agents: pytest.Pytester,
) -> None:
    (agents.path / "prices.json").write_text(
        json.dumps({"gpt-4o-mini": {"output_cost_per_tokens": 1e-3, "mode": "chat"}})
    )
    agents.makeini(INI + "agentperf_prices = prices.json\n")
    agents.makepyfile("def test_plain():\n    pass\n")
    result = agents.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*AgentPerfWarning: price file *prices.json: model 'gpt-4o-mini': unknown field "
            "'output_cost_per_tokens' is ignored; did you mean 'output_cost_per_token'?*"
        ]
    )
    strict = agents.runpytest("-W", "error::pytest_agentperf.AgentPerfWarning")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    strict.stderr.fnmatch_lines(["ERROR: price file *unknown field 'output_cost_per_tokens'*"])
    assert "INTERNALERROR" not in strict.stdout.str() + strict.stderr.str()


def test_a_secret_in_an_error_never_reaches_the_terminal_or_the_json(
    agents: pytest.Pytester,
) -> None:
    key = "sk-proj-" + "Ab3dE" * 8
    agents.makepyfile(
        f"""
        def leaky(x=None):
            raise RuntimeError(
                "401 for Authorization: Bearer {key} at https://h/?api_key=0123456789abcdef"
            )

        def test_leak(agentperf):
            agentperf.run(leaky, requests=3, error_rate="10%")
        """
    )
    result = agents.runpytest("--agentperf-json=perf.json")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "first error: RuntimeError: 401 for Authorization: Bearer ***" in out
    text = (agents.path / "perf.json").read_text("utf-8")
    assert "Bearer ***" in text and "api_key=***" in text
    assert key not in out and key not in text and "0123456789abcdef" not in out + text
