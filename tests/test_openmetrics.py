"""Prometheus output: the OpenMetrics file and the Pushgateway push (``report.openmetrics``,
``report.pushgateway``).

The families are checked by parsing what was written with prometheus-client's own parsers (the
OpenMetrics one for the file, the classic one as node-exporter and the Pushgateway read it).
The push tests start the real ``prometheus-pushgateway`` binary on a free loopback port and
scrape it back; without the binary they skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Imported here, in the outer process, so pytester's in-process runs find it loaded (see the
# note on numpy in conftest.py).
import prometheus_client.openmetrics.parser as om_parser
import prometheus_client.parser as text_parser
import pytest
from conftest import QUIET_MACHINE, make_result

pytest_plugins = ["pytester"]


# ----------------------------------------------------------------------------- helpers


def _families(text: str, *, classic: bool = False) -> dict[str, Any]:
    parse = text_parser if classic else om_parser
    return {f.name: f for f in parse.text_string_to_metric_families(text)}


def _samples(family: Any, suffix: str = "", **labels: str) -> list[Any]:
    """Samples of ``family`` named ``family.name + suffix`` whose labels include ``labels``."""
    return [
        s
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def _value(family: Any, suffix: str = "", **labels: str) -> float:
    found = _samples(family, suffix, **labels)
    assert len(found) == 1, (suffix, labels, found)
    return float(found[0].value)


def _buckets(family: Any, **labels: str) -> dict[float, float]:
    return {float(s.labels["le"]): s.value for s in _samples(family, "_bucket", **labels)}


def _text(records: Sequence[Any]) -> str:
    from pytest_agentperf.report.openmetrics import text

    return text(records)


def _record(result: Any, nodeid: str = "t.py::test_a") -> Any:
    from pytest_agentperf.record import RunRecord

    return RunRecord.of(nodeid, result)


def _table(**columns: Any) -> Any:
    """A CallTable from plain lists (arrays made with the right dtypes)."""
    from pytest_agentperf.results import CallTable, SpanTable

    spans = columns.pop("spans", None)
    dtypes = {"status": np.int8, "input_tokens": np.int64, "output_tokens": np.int64}
    dtypes.update(model=np.int64, error_rows=np.int64)
    made = {
        k: (np.asarray(v, dtype=dtypes.get(k, np.float64)) if isinstance(v, list) else v)
        for k, v in columns.items()
    }
    if spans is not None:
        span_dtypes = {"call": np.int64, "kind": np.int8, "name": np.int64, "provider": np.int64}
        span_dtypes.update(input_tokens=np.int64, output_tokens=np.int64, ok=np.int8)
        made["spans"] = SpanTable(
            **{k: np.asarray(v, dtype=span_dtypes.get(k, np.float64)) for k, v in spans.items()}
        )
    return CallTable(**made)


NAN = math.nan

# Five calls: three ok (0.005 s, 0.05 s, 0.3 s), one error (0.02 s), one timeout (1.0 s); the
# first two on model "m1", the rest on "m2" (index 1); calls 0 and 4 streamed.
FIVE_CALLS = {
    "start": [0.0, 0.1, 0.2, 0.3, 0.4],
    "actual": [0.0, 0.11, 0.2, 0.3, 0.4],
    "end": [0.005, 0.16, 0.5, 0.32, 1.4],
    "status": [0, 0, 0, 1, 2],
    "ttft": [0.003, NAN, NAN, NAN, 0.5],
    "input_tokens": [10, 20, 30, -1, 40],
    "output_tokens": [1, 2, 3, -1, 4],
    "cost": [0.001, 0.002, NAN, NAN, 0.004],
    "model": [0, 0, 1, 1, 1],
    "error_rows": [3, 4],
    "error_types": ("RateLimitError", "Timeout"),
    "names": ("m1", "m2", "search"),
}
# Four operations: two timed chat requests in call 0 (m1), one untimed in call 2 (m2, from
# record_usage), one tool call (not a chat: no tokens counted).
SPANS = {
    "call": [0, 0, 2, 2],
    "kind": [0, 0, 0, 1],
    "name": [0, 0, 1, 2],
    "provider": [-1, -1, -1, -1],
    "start": [0.0, 0.002, NAN, 0.3],
    "end": [0.001, 0.004, NAN, 0.35],
    "input_tokens": [100, 5000, 7, -1],
    "output_tokens": [10, 20, -1, -1],
    "ttft": [NAN, NAN, NAN, NAN],
    "ok": [1, 1, 1, 1],
}


def _five_calls_result(**fields: Any) -> Any:
    return make_result(
        [0.005, 0.05, 0.3],
        requests=5,
        errors=2,
        timeouts=1,
        error_types={"RateLimitError": 1, "Timeout": 1},
        calls=_table(**FIVE_CALLS, spans=SPANS),
        **fields,
    )


# ----------------------------------------------------------------------------- the families


def test_the_file_parses_and_ends_with_eof() -> None:
    text = _text([_record(_five_calls_result())])
    assert text.endswith("# EOF\n")
    families = _families(text)
    assert {
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_token_usage",
        "gen_ai_client_operation_time_to_first_chunk_seconds",
        "agentperf_calls",
        "agentperf_errors",
    } <= families.keys()
    assert families["gen_ai_client_operation_duration_seconds"].type == "histogram"


def test_operation_duration_is_each_call_actual_start_to_end_with_genai_buckets() -> None:
    from pytest_agentperf.report.openmetrics import DURATION_BUCKETS

    family = _families(_text([_record(_five_calls_result())]))[
        "gen_ai_client_operation_duration_seconds"
    ]
    ok_m1 = {"gen_ai_operation_name": "invoke_agent", "gen_ai_request_model": "m1"}
    ok_m1["error_type"] = ""
    # m1: 0.005 s and 0.05 s (end - actual, not end - start: call 1 started 10 ms late)
    assert _value(family, "_count", **ok_m1) == 2
    assert _value(family, "_sum", **ok_m1) == pytest.approx(0.055)
    buckets = _buckets(family, **ok_m1)
    assert list(buckets)[:-1] == list(DURATION_BUCKETS)
    assert buckets[0.01] == 1 and buckets[0.04] == 1 and buckets[0.08] == 2
    assert buckets[math.inf] == 2
    base = {"gen_ai_operation_name": "invoke_agent", "gen_ai_request_model": "m2"}
    assert _value(family, "_count", **base, error_type="") == 1  # 0.3 s
    assert _value(family, "_count", **base, error_type="RateLimitError") == 1
    assert _value(family, "_sum", **base, error_type="Timeout") == pytest.approx(1.0)
    # the two timed chat requests of m1; the untimed one (NaN) is not observed
    chat = {"gen_ai_operation_name": "chat", "gen_ai_request_model": "m1", "error_type": ""}
    assert _value(family, "_count", **chat) == 2
    assert _value(family, "_sum", **chat) == pytest.approx(0.003)
    assert not _samples(family, "_count", gen_ai_operation_name="chat", gen_ai_request_model="m2")


def test_token_usage_is_one_observation_per_llm_request() -> None:
    from pytest_agentperf.report.openmetrics import TOKEN_BUCKETS

    family = _families(_text([_record(_five_calls_result())]))["gen_ai_client_token_usage"]
    assert TOKEN_BUCKETS[0] == 1 and TOKEN_BUCKETS[-1] == 67108864
    m1_in = {"gen_ai_request_model": "m1", "gen_ai_token_type": "input"}
    assert _value(family, "_count", **m1_in) == 2
    assert _value(family, "_sum", **m1_in) == 5100
    buckets = _buckets(family, **m1_in)
    assert buckets[64.0] == 0 and buckets[256.0] == 1 and buckets[4096.0] == 1
    assert buckets[16384.0] == 2
    assert _value(family, "_sum", gen_ai_request_model="m1", gen_ai_token_type="output") == 30
    assert _value(family, "_count", gen_ai_request_model="m2", gen_ai_token_type="input") == 1
    # m2's output was unknown (-1): nothing observed; the tool call counts no tokens
    assert not _samples(family, "_count", gen_ai_request_model="m2", gen_ai_token_type="output")
    assert {s.labels["gen_ai_operation_name"] for s in family.samples} == {"chat"}


def test_without_chat_requests_each_calls_tokens_are_observed_unknown_skipped() -> None:
    result = make_result([0.005, 0.05, 0.3], requests=5, errors=2, calls=_table(**FIVE_CALLS))
    family = _families(_text([_record(result)]))["gen_ai_client_token_usage"]
    m2_in = {"gen_ai_request_model": "m2", "gen_ai_token_type": "input"}
    m2_in["gen_ai_operation_name"] = "invoke_agent"
    assert _value(family, "_count", **m2_in) == 2  # 30 and 40; the error's -1 is skipped
    assert _value(family, "_sum", **m2_in) == 70
    assert _value(family, "_sum", gen_ai_request_model="m1", gen_ai_token_type="output") == 3


def test_ttft_is_each_streamed_call() -> None:
    family = _families(_text([_record(_five_calls_result())]))[
        "gen_ai_client_operation_time_to_first_chunk_seconds"
    ]
    assert _value(family, "_count", gen_ai_request_model="m1") == 1
    assert _value(family, "_sum", gen_ai_request_model="m2") == pytest.approx(0.5)


def test_without_a_call_table_the_runs_samples_are_used() -> None:
    from pytest_agentperf.results import ModelUsage, Usage
    from pytest_agentperf.stats import summarize

    ttft = summarize(np.asarray([0.02, 0.03], dtype=np.float64))
    usage = Usage(input_tokens=30, output_tokens=6, calls_with_usage=3)
    usage = Usage(**{**usage.__dict__, "by_model": {"gpt-x": ModelUsage(3, 30, 6)}})
    result = make_result([0.005, 0.05, 0.3], ttft=ttft, usage=usage)
    families = _families(_text([_record(result)]))
    duration = families["gen_ai_client_operation_duration_seconds"]
    assert _value(duration, "_count", gen_ai_request_model="gpt-x") == 3
    assert _value(duration, "_sum") == pytest.approx(0.355)
    first_chunk = families["gen_ai_client_operation_time_to_first_chunk_seconds"]
    assert _value(first_chunk, "_count") == 2
    tokens = families["agentperf_tokens"]
    assert _value(tokens, gen_ai_request_model="gpt-x", gen_ai_token_type="input") == 30
    assert "gen_ai_client_token_usage" not in families  # no per-request counts to spread


def test_a_run_that_did_not_stream_has_no_ttft_family() -> None:
    families = _families(_text([_record(make_result([0.01, 0.02]))]))
    assert "gen_ai_client_operation_time_to_first_chunk_seconds" not in families
    assert "agentperf_ttft_seconds" not in families


def test_outcomes_errors_cost_budgets_and_percentiles() -> None:
    from pytest_agentperf.results import BudgetCheck, Cost

    budgets = (
        BudgetCheck("p95", 0.1, 0.29, False, 3, "p95 0.29 s > 0.1 s"),
        BudgetCheck("error_rate", 0.5, 0.4, True, 5, "ok"),
    )
    cost = Cost(total=0.007, per_call=0.0014, by_model={"m1": 0.003, "m2": None})
    record = _record(_five_calls_result(budgets=budgets, cost=cost))
    assert str(record.status) == "FAIL"
    families = _families(_text([record]))
    calls = families["agentperf_calls"]
    assert [_value(calls, outcome=o) for o in ("ok", "error", "timeout")] == [3, 1, 1]
    assert _value(families["agentperf_errors"], error_type="RateLimitError") == 1
    assert _value(families["agentperf_cost_usd"], gen_ai_request_model="m1") == 0.003
    assert not _samples(families["agentperf_cost_usd"], gen_ai_request_model="m2")  # no price
    assert _value(families["agentperf_budget_passed"], budget="p95") == 0
    assert _value(families["agentperf_budget_passed"], budget="error_rate") == 1
    assert _value(families["agentperf_budget_limit"], budget="p95") == 0.1
    assert _value(families["agentperf_budget_value"], budget="p95") == 0.29
    assert _value(families["agentperf_run_status"], status="FAIL") == 1
    p95 = record.result.latency.p95
    assert _value(families["agentperf_latency_seconds"], quantile="0.95") == pytest.approx(p95)


def test_label_values_are_redacted() -> None:
    key = "sk-proj-" + "a1b2c3d4" * 4
    record = _record(make_result([0.01], name=f"with {key}"), nodeid=f"t.py::test[{key}]")
    text = _text([record])
    assert key not in text
    assert _value(_families(text)["agentperf_calls"], outcome="ok", run="with sk-proj-***") == 1


def test_two_records_with_the_same_labels_add_up_instead_of_clashing() -> None:
    text = _text([_record(make_result([0.01, 0.02])), _record(make_result([0.03]))])
    families = _families(text)
    assert _value(families["gen_ai_client_operation_duration_seconds"], "_count") == 3
    assert _value(families["agentperf_calls"], outcome="ok") == 3


def test_the_file_reads_as_the_classic_text_format_too() -> None:
    """node-exporter's textfile collector and the Pushgateway read the classic format: the
    histograms and the gauges keep their types there."""
    from pytest_agentperf.results import Cost

    result = _five_calls_result(cost=Cost(total=0.003, by_model={"m1": 0.003}))
    families = _families(_text([_record(result)]), classic=True)
    assert families["gen_ai_client_operation_duration_seconds"].type == "histogram"
    assert families["gen_ai_client_token_usage"].type == "histogram"
    assert families["agentperf_calls"].type == "gauge"
    assert families["agentperf_cost_usd"].type == "gauge"


def test_an_empty_session_writes_only_eof_and_can_write_again(tmp_path: Path) -> None:
    from pytest_agentperf.report.openmetrics import create
    from pytest_agentperf.report.protocol import ReportContext

    target = tmp_path / "metrics.prom"
    writer = create(str(target), {})
    context = ReportContext(plugin_version="0", root=tmp_path)
    writer.write([], context)
    assert target.read_text() == "# EOF\n"
    writer.write([_record(make_result([0.01]))], context)
    writer.write([_record(make_result([0.01]))], context)  # our own file is replaced
    assert "agentperf_calls" in target.read_text()


def test_a_file_that_is_not_ours_is_left_alone(tmp_path: Path) -> None:
    from pytest_agentperf.errors import OutputPathError
    from pytest_agentperf.report.openmetrics import create
    from pytest_agentperf.report.protocol import ReportContext

    target = tmp_path / "node.prom"
    target.write_text("# TYPE node_thing gauge\nnode_thing 1\n")
    with pytest.raises(OutputPathError, match="not a pytest-agentperf OpenMetrics file"):
        create(str(target), {}).write([], ReportContext(plugin_version="0", root=tmp_path))
    assert target.read_text() == "# TYPE node_thing gauge\nnode_thing 1\n"


def test_without_prometheus_client_the_message_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from pytest_agentperf.errors import AgentPerfError
    from pytest_agentperf.report.openmetrics import create
    from pytest_agentperf.report.protocol import ReportContext

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    with pytest.raises(AgentPerfError, match=r"pip install 'pytest-agentperf\[prometheus\]'"):
        create(str(tmp_path / "m.prom"), {}).write([], ReportContext(plugin_version="0"))
    assert not (tmp_path / "m.prom").exists()


def test_a_session_without_runs_pushes_nothing() -> None:
    from pytest_agentperf.report.protocol import ReportContext
    from pytest_agentperf.report.pushgateway import create

    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens: a push would warn
    line = create(url, {}).write([], ReportContext(plugin_version="0"))
    assert line == f"Pushgateway push: no perf run in this session, nothing sent to {url}"


# ----------------------------------------------------------------------------- end to end

AGENT = """
import os, time
from pytest_agentperf import record_usage

def two_llm_requests(x=None):  # sleeps DELAY seconds (an environment variable), 2 ms by default
    time.sleep(float(os.environ.get("DELAY", "0.002")))
    record_usage(100, 20, model="gpt-4o-mini")
    record_usage(50, 10, model="gpt-4o-mini")
    return x
"""

TESTS = """
import pytest
from agent import two_llm_requests

@pytest.mark.agent_perf(requests={n}, warmup=1)
def test_one(agentperf):
    agentperf.run(two_llm_requests, name="main")

@pytest.mark.agent_perf(requests={n}, warmup=1)
def test_two(agentperf):
    agentperf.run(two_llm_requests)
"""

# As in test_gate_plugin.py: the machine is reported quiet, so the other xdist worker's load
# cannot turn the 25x slowdown below into INCONCLUSIVE instead of REGRESSED.


@pytest.fixture
def project(agents: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("DELAY", raising=False)
    agents.makepyfile(agent=AGENT, test_perf=TESTS.format(n=20))
    agents.makeconftest(QUIET_MACHINE)
    return agents


def _check_two_tests(text: str, requests: int) -> None:
    families = _families(text)
    duration = families["gen_ai_client_operation_duration_seconds"]
    tokens = families["gen_ai_client_token_usage"]
    for test, run in (("test_perf.py::test_one", "main"), ("test_perf.py::test_two", "default")):
        labels = {"test": test, "run": run, "gen_ai_request_model": "gpt-4o-mini"}
        assert _value(duration, "_count", **labels, gen_ai_operation_name="invoke_agent") == (
            requests
        )
        chat = {**labels, "gen_ai_operation_name": "chat"}
        # two LLM requests per call, each its own observation (warm-up call excluded)
        assert _value(tokens, "_count", **chat, gen_ai_token_type="input") == 2 * requests
        assert _value(tokens, "_sum", **chat, gen_ai_token_type="input") == 150 * requests
        assert _value(tokens, "_sum", **chat, gen_ai_token_type="output") == 30 * requests
        assert _value(families["agentperf_calls"], test=test, outcome="ok") == requests
        assert _value(families["agentperf_cost_usd"], test=test) > 0


@pytest.mark.parametrize("xdist", [False, True], ids=["in-process", "xdist"])
def test_openmetrics_end_to_end(project: pytest.Pytester, xdist: bool) -> None:
    args = ("-n", "2") if xdist else ()
    run = project.runpytest_subprocess if xdist else project.runpytest
    result = run(*args, "--agentperf-openmetrics=out/metrics.prom")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["agentperf: OpenMetrics file written to *metrics.prom"])
    _check_two_tests((project.path / "out" / "metrics.prom").read_text(), requests=20)


def test_a_broken_budget_says_zero(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_perf="""
import pytest
from agent import two_llm_requests

@pytest.mark.agent_perf(requests=10, p50="0.1ms", error_rate="10%")
def test_slow(agentperf):
    agentperf.run(two_llm_requests)
"""
    )
    result = project.runpytest("--agentperf-openmetrics=metrics.prom")
    result.assert_outcomes(failed=1)
    families = _families((project.path / "metrics.prom").read_text())
    assert _value(families["agentperf_budget_passed"], budget="p50") == 0
    assert _value(families["agentperf_budget_passed"], budget="error_rate") == 1
    assert _value(families["agentperf_budget_limit"], budget="p50") == pytest.approx(0.0001)
    assert _value(families["agentperf_budget_value"], budget="p50") > 0.0001
    assert _value(families["agentperf_run_status"], status="FAIL") == 1


def test_a_regression_against_the_baseline(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.setenv("DELAY", "0.05")  # 25x slower
    result = project.runpytest("--agentperf-openmetrics=metrics.prom", "-k", "test_one")
    result.assert_outcomes(failed=1)
    families = _families((project.path / "metrics.prom").read_text())
    assert _value(families["agentperf_run_status"], status="REGRESSED") == 1
    change = families["agentperf_baseline_change"]
    assert _value(change, metric="p95", kind="ratio") > 5


# ----------------------------------------------------------------------------- Pushgateway

PUSHGATEWAY = "prometheus-pushgateway"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def _pushgateway_binary(environ: Mapping[str, str], path: str | None = None) -> str:
    """The binary's path; else a skip with the reason, or a failure in CI (``CI=true``),
    where .ci/run installs it, so a missing binary cannot pass unnoticed."""
    binary = shutil.which(PUSHGATEWAY, path=path)
    if binary is None:
        reason = f"{PUSHGATEWAY} is not installed (apt-get install {PUSHGATEWAY})"
        if environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must have it: .ci/run installs it")
        pytest.skip(reason)
    return binary


def test_a_missing_pushgateway_fails_in_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        _pushgateway_binary({"CI": "true"}, path=str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match="is not installed"):
        _pushgateway_binary({}, path=str(tmp_path))


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """A real Pushgateway on a free loopback port; its base URL."""
    binary = _pushgateway_binary(os.environ, os.environ.get("PATH", "") + os.pathsep + "/usr/bin")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "pushgateway.log").open("w")
    process = subprocess.Popen(
        # Debian's build persists to /var/lib/prometheus by default: an empty file keeps the
        # metrics in memory only, so no test sees another's pushes.
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30  # generous: a loaded machine starts it slowly
        while True:
            try:
                _get(f"{url}/-/ready")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"{PUSHGATEWAY} did not start: {(tmp_path / 'pushgateway.log').read_text()}"
                    )
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _scrape(url: str, **labels: str) -> dict[str, Any]:
    """The families on the Pushgateway, only the samples whose labels include ``labels``."""
    families = _families(_get(f"{url}/metrics"), classic=True)
    for family in families.values():
        family.samples = [
            s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())
        ]
    return {name: f for name, f in families.items() if f.samples}


def test_a_push_arrives_and_a_rerun_replaces_it(project: pytest.Pytester, pushgateway: str) -> None:
    session = project.path.name
    result = project.runpytest(f"--agentperf-pushgateway={pushgateway}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"agentperf: Pushgateway push: 2 run(s) sent to {pushgateway} "
            f"(job=agentperf, session={session})"
        ]
    )
    families = _scrape(pushgateway, job="agentperf", session=session)
    duration = families["gen_ai_client_operation_duration_seconds"]
    assert duration.type == "histogram"
    assert _value(duration, "_count", test="test_perf.py::test_one") == 20
    assert (
        _value(
            families["gen_ai_client_token_usage"],
            "_count",
            test="test_perf.py::test_one",
            gen_ai_token_type="input",
        )
        == 40
    )

    project.makepyfile(test_perf=TESTS.format(n=12))  # the same session again, fewer calls
    project.runpytest(f"--agentperf-pushgateway={pushgateway}").assert_outcomes(passed=2)
    duration = _scrape(pushgateway, job="agentperf", session=session)[
        "gen_ai_client_operation_duration_seconds"
    ]
    assert _value(duration, "_count", test="test_perf.py::test_one") == 12  # replaced, not 32


def test_push_with_its_own_job_and_the_file_together(
    project: pytest.Pytester, pushgateway: str
) -> None:
    result = project.runpytest(
        f"--agentperf-pushgateway={pushgateway}",
        "--agentperf-pushgateway-job=nightly",
        "--agentperf-openmetrics=metrics.prom",
    )
    result.assert_outcomes(passed=2)
    families = _scrape(pushgateway, job="nightly", session=project.path.name)
    assert _value(families["agentperf_calls"], test="test_perf.py::test_two", outcome="ok") == 20
    assert not _scrape(pushgateway, job="agentperf")
    _check_two_tests((project.path / "metrics.prom").read_text(), requests=20)


def test_a_failed_push_is_a_warning_naming_the_url(project: pytest.Pytester) -> None:
    """No gateway listens: the session still passes, its other reports are written, and the
    line names the URL (its password masked), with no traceback."""
    url = f"http://ci:hunter2secret@127.0.0.1:{_free_port()}"
    result = project.runpytest(
        f"--agentperf-pushgateway={url}",
        "--agentperf-json=perf.json",
        "--agentperf-openmetrics=metrics.prom",
    )
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    port = url.rsplit(":", 1)[1]
    result.stdout.fnmatch_lines(
        [
            "agentperf: WARNING: the Pushgateway push to "
            f"http://ci:***@127.0.0.1:{port} failed (*); nothing was pushed, "
            "the session's outcome and its other reports are unchanged"
        ]
    )
    assert "hunter2secret" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert len(json.loads((project.path / "perf.json").read_text())["runs"]) == 2
    _check_two_tests((project.path / "metrics.prom").read_text(), requests=20)


def test_a_failed_push_is_reported_without_the_terminal_reporter(
    project: pytest.Pytester,
) -> None:
    """With ``-p no:terminal`` there is no summary to show the warning in: it goes to stderr,
    as the reports written do."""
    port = _free_port()
    result = project.runpytest(
        "-p", "no:terminal", f"--agentperf-pushgateway=http://127.0.0.1:{port}"
    )
    assert result.ret == 0
    result.stderr.fnmatch_lines(
        [f"agentperf: WARNING: the Pushgateway push to http://127.0.0.1:{port} failed (*"]
    )
