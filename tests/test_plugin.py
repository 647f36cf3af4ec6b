"""End-to-end: the plugin as a user meets it, through pytester."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]


def test_marker_and_fixture_pass_and_print_the_table(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        @pytest.mark.agent_perf(requests=30, concurrency=3, p95="2s", error_rate="1%")
        def test_agent(agentperf):
            r = agentperf.run(fast_sync, ["a", "b"])
            assert r.requests == 30 and r.errors == 0
            assert r.latency.n == 30 and r.latency.p95 < 2
        """
    )
    result = agents.runpytest("--strict-markers", "--agentperf-columns=all")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*= agent performance =*", "test*n*load*p50*p95*p99*", "*test_agent*30*c=3*PASS*"]
    )


def test_plugin_can_be_disabled(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        @pytest.mark.agent_perf(requests=3)
        def test_agent(agentperf):
            pass
        """
    )
    result = agents.runpytest("-p", "no:agentperf")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'agentperf' not found*"])


def test_bad_settings_fail_that_test_before_its_body_and_others_run(
    agents: pytest.Pytester,
) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync
        BODY = []

        @pytest.mark.agent_perf(requests=5, p95_latency="1s")
        def test_typo(agentperf):
            BODY.append(1)

        @pytest.mark.agent_perf(requests=5, p95="fast")
        def test_malformed(agentperf):
            BODY.append(1)

        @pytest.mark.agent_perf(requests=0)
        def test_zero(agentperf):
            BODY.append(1)

        def test_kwarg_typo(agentperf):
            agentperf.run(fast_sync, requests=2, concurency=2)

        @pytest.mark.agent_perf(requests=2)
        def test_fine(agentperf):
            agentperf.run(fast_sync)
            assert BODY == []
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(passed=1, failed=1, errors=3)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    result.stdout.fnmatch_lines(
        [
            "*test_typo: invalid @pytest.mark.agent_perf: unknown setting 'p95_latency';"
            " did you mean 'p95'?*",
            "*test_malformed*p95='fast': malformed value*",
            "*test_zero*requests=0: must be at least 1*",
            "*unknown setting 'concurency'; did you mean 'concurrency'?*",
        ]
    )


def test_broken_budgets_fail_with_every_limit_and_value(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        def boom(x=None):
            if x:
                raise ValueError("provider down")
            return fast_sync()

        @pytest.mark.agent_perf(requests=20, p50="1us", error_rate="1%")
        def test_slow(agentperf):
            agentperf.run(boom, [0, 1])
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*BudgetExceeded: 2 budgets exceeded in run 'default':*",
            "*p50 latency * > budget 1 µs (n=10)*",
            "*error rate 50% > budget 1% (n=20)*",
            "*test_slow*FAIL p50, error_rate*",
            "*first error: ValueError: provider down*",
        ]
    )


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_async_tests_use_arun(agents: pytest.Pytester, mode: str) -> None:
    marker = "@pytest.mark.asyncio" if mode == "strict" else ""
    agents.makepyfile(
        f"""
        import pytest
        from agents import fast_async, fast_sync

        {marker}
        @pytest.mark.agent_perf(requests=10, concurrency=5)
        async def test_async_agent(agentperf):
            r = await agentperf.arun(fast_async)
            assert r.usage.total_tokens == 150

        {marker}
        async def test_sync_agent_from_async_test(agentperf):
            r = await agentperf.arun(fast_sync, requests=4)
            assert r.requests == 4

        {marker}
        async def test_run_in_async_test(agentperf):
            agentperf.run(fast_async)
        """
    )
    result = agents.runpytest(f"--asyncio-mode={mode}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*UsageError*use `await agentperf.arun(...)` there instead*"])


def test_fixture_alone_uses_defaults_and_kwargs_override_the_marker(
    agents: pytest.Pytester,
) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        def test_defaults(agentperf):
            r = agentperf.run(fast_sync)
            assert r.requests == 20 and r.shape.concurrency == 1

        @pytest.mark.agent_perf(requests=50, concurrency=2)
        def test_override(agentperf):
            r = agentperf.run(fast_sync, requests=7, name="quick")
            assert (r.requests, r.shape.concurrency, r.name) == (7, 2, "quick")
            r2 = agentperf.run(fast_sync, requests=3, name="quick")
            assert r2.name == "quick-2"
        """
    )
    result = agents.runpytest("-v")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "test_override [quick] " in out and "test_override [quick-2] " in out


def test_skip_scale_and_json_options(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        @pytest.mark.agent_perf(requests=40)
        def test_agent(agentperf):
            r = agentperf.run(fast_sync)
            assert r.requests == 10

        def test_plain():
            pass
        """
    )
    skipped = agents.runpytest("--agentperf-skip")
    skipped.assert_outcomes(passed=1, skipped=1)
    assert "agent performance" not in skipped.stdout.str()

    result = agents.runpytest("--agentperf-scale=0.25", "--agentperf-json=out/perf.json", "-q")
    result.assert_outcomes(passed=2)
    data = json.loads((agents.path / "out" / "perf.json").read_text())
    assert data["schema_version"] == 2
    (run,) = data["runs"]
    assert run["nodeid"].endswith("test_agent") and run["result"]["requests"] == 10

    for value in ("0", "inf", "nan"):
        bad = agents.runpytest(f"--agentperf-scale={value}")
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        bad.stderr.fnmatch_lines(["*--agentperf-scale=*: must be a finite number greater than 0*"])


def test_no_table_when_no_perf_test_ran(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1)
    assert "agent performance" not in result.stdout.str()


def test_small_sample_warning_names_the_test(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        @pytest.mark.agent_perf(requests=20, p99="10s")
        def test_few(agentperf):
            agentperf.run(fast_sync)

        @pytest.mark.agent_perf(requests=2)
        def test_marked_without_fixture():
            pass
        """
    )
    result = agents.runpytest("-rA")
    result.assert_outcomes(passed=2)
    # counted by type: pytest-asyncio 0.23 adds a warning of its own about the ini
    assert result.stdout.str().count("AgentPerfWarning:") == 2
    result.stdout.fnmatch_lines(
        [
            "*AgentPerfWarning: *test_few: p99 budget checked on 20 samples;"
            " a p99 needs at least 299*",
            "*test_marked_without_fixture is marked agent_perf but does not use the agentperf*",
        ]
    )


def test_xdist_controller_prints_one_merged_table(agents: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.agent_perf(requests=5)
        def test_agent(agentperf, i):
            agentperf.run(fast_sync)
        """
    )
    result = agents.runpytest_subprocess("-n", "2", "--agentperf-json=perf.json")
    result.assert_outcomes(passed=4)
    assert result.stdout.str().count("= agent performance =") == 1
    data = json.loads((agents.path / "perf.json").read_text())
    assert sorted(r["nodeid"].split("[")[1] for r in data["runs"]) == ["0]", "1]", "2]", "3]"]


def test_runs_in_fixture_setup_and_teardown_are_reported(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        @pytest.fixture
        def warm(agentperf):
            agentperf.run(fast_sync, name="in_setup", requests=3)
            yield
            agentperf.run(fast_sync, name="in_teardown", requests=3)

        def test_phases(warm, agentperf):
            agentperf.run(fast_sync, name="in_call", requests=3)
        """
    )
    result = agents.runpytest("--agentperf-json=perf.json")
    result.assert_outcomes(passed=1)
    data = json.loads((agents.path / "perf.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["in_setup", "in_call", "in_teardown"]
