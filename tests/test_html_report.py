"""``--agentperf-html``: the self-contained HTML dashboard, its escaping, its size, and the page
opened in a real browser (headless Chromium through selenium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy
import pytest
from conftest import INI, make_result

EVIL = "<img src=x onerror=alert(1)>"

AGENTS = """
import asyncio, time
from pytest_agentperf import record_usage
from pytest_agentperf.usage import record_tool
from pytest_agentperf.sim import SimulatedAgent

EVIL = "<img src=x onerror=alert(1)>"

def tool_agent(x):
    time.sleep(0.001)
    record_usage(100 + x, 20, model="gpt-4o-mini")
    record_tool("search" + EVIL, 0.0005, x != 2)
    if x == 3:
        raise ValueError("</script><script>alert(2)</script>" + EVIL)
    return "ok"

ERRORING = SimulatedAgent(median="3ms", error_rate=0.2, seed=1)
STREAMING = SimulatedAgent(ttft="2ms", output_tokens=8, tokens_per_second=4000, seed=4)
"""

TESTS = """
import pytest
from agents_html import ERRORING, STREAMING, EVIL, tool_agent

@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=80, concurrency=8, error_rate="60%")
async def test_errors(agentperf):
    await agentperf.arun(ERRORING, ["a"])

@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=40, concurrency=4, p95="5s")
async def test_streaming(agentperf):
    await agentperf.arun(STREAMING.stream, ["q"])

@pytest.mark.parametrize("x", [EVIL], ids=[EVIL])
@pytest.mark.agent_perf(requests=24, concurrency=2, error_rate="60%")
def test_tools(agentperf, x):
    agentperf.run(tool_agent, [0, 1, 2, 3])
"""

# every chart the page draws, by kind, with its number of uPlot series (x included)
SERIES = {
    "latency-hist": 2,
    "latency-cdf": 2,
    "latency-time": 4,
    "windows": 3,
    "rss": 2,
    "ttft-hist": 2,
    "ttft-time": 2,
    "itl-hist": 2,
    "tokens": 3,
    "cost": 2,
}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(agents_html=AGENTS, test_html=TESTS)
    return pytester


def _data(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="agentperf-data">(.*?)</script>', page, re.S)
    assert m is not None
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def _text_outside_scripts(page: str) -> str:
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A page made end to end, once for the module (each session takes seconds): the runs
    recorded as a baseline, then measured again and compared. In subprocesses, as pytester's
    in-process runs keep part of the package loaded between sessions."""
    folder = tmp_path_factory.mktemp("html_project")
    (folder / "pytest.ini").write_text(INI, encoding="utf-8")
    (folder / "agents_html.py").write_text(AGENTS, encoding="utf-8")
    (folder / "test_html.py").write_text(TESTS, encoding="utf-8")
    baseline = _pytest(folder, "--agentperf-baseline")
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    measured = _pytest(
        folder,
        "--agentperf-html=out/report.html",
        "--agentperf-json=out/r.json",
        "--agentperf-regression=warn",  # a noisy machine must not fail the page's runs
    )
    assert measured.returncode == 0, measured.stdout + measured.stderr
    assert "HTML report written to" in measured.stdout
    return folder / "out" / "report.html"


# ----------------------------------------------------------------------------- the page as text


def test_the_page_is_one_file_without_any_request(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>\n<!-- pytest-agentperf html report -->")
    # nothing loaded from elsewhere: no src or href but a fragment or data URL, no url()
    assert not re.search(r"""\s(?:src|href)=["'](?!#|data:)""", _text_outside_scripts(page))
    assert "default-src 'none'" in page
    assert "@import" not in page and "url(http" not in page
    assert "uPlot" in page and "agentperfCharts" in page  # the library and our script, inlined


def test_every_run_is_in_the_overview_and_has_its_chart_data(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    data = _data(page)
    assert len(data["runs"]) == 3
    errors, streaming, tools = data["runs"]
    assert errors["calls"]["n"] == 80
    assert sum(s != 0 for s in errors["calls"]["status"]) > 0  # the failed calls are marked
    assert streaming["streamed"] and streaming["ttft"]["hist"] and streaming["itl"]
    assert errors["ttft"] is None
    assert sum(tools["latency"]["hist"]["counts"]) == 18  # 24 calls, every 4th failed
    assert tools["calls"]["input_tokens"][:4] == [100, 101, 102, 103]
    assert "Against the baseline" in page  # each run compared with the one just recorded
    assert 'class="ratio-bar"' in page
    assert page.count('class="run"') == 3
    assert "Tool calls" in page and "Tokens and cost by model" in page


def test_strings_from_tests_are_text_not_markup(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    html = _text_outside_scripts(page)
    assert "onerror=alert" in html  # the id, the tool and the error message are shown...
    assert "<img" not in html  # ...as text: no tag
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;/script&gt;&lt;script&gt;alert(2)" in html
    data_block = re.search(r'id="agentperf-data">(.*?)</script>', page, re.S)
    assert data_block is not None and "<" not in data_block.group(1)
    assert EVIL in json.dumps(_data(page))  # the data still says it, decoded


def test_script_json_cannot_end_its_element() -> None:
    from pytest_agentperf.report.html import script_json

    text = script_json({"a": "</script><!--x-->&\u2028", "<k>": 1})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!--x-->&\u2028", "<k>": 1}


def test_histogram_uses_log_bins_for_a_long_tail_and_linear_ones_otherwise() -> None:
    from pytest_agentperf.report.html import HISTOGRAM_BINS, histogram

    tail = histogram([0.01] * 50 + [0.02] * 40 + [5.0])
    body = histogram(numpy.linspace(0.10, 0.12, 100))
    assert tail is not None and body is not None
    assert tail["log"] and not body["log"]
    assert sum(tail["counts"]) == 91 and sum(body["counts"]) == 100
    assert len(tail["edges"]) == HISTOGRAM_BINS + 1
    assert histogram([]) is None
    assert histogram([0.5, 0.5]) is not None  # one value: a bin around it, no division by 0


def test_findings_are_listed_under_their_run_escaped() -> None:
    from pytest_agentperf.record import Finding, RunRecord
    from pytest_agentperf.report.html import render

    record = RunRecord.of("t.py::test_a", make_result([0.1, 0.2, 0.3]))
    finding = Finding(
        "rate-limited", "most errors are 429s" + EVIL, {"share": 0.9}, advice="add backoff" + EVIL
    )
    page = render([replace(record, findings=(finding,))], plugin_version="x")
    assert "<strong>rate-limited</strong> (info): most errors are 429s&lt;img" in page
    assert "share=0.9" in page and "; add backoff&lt;img" in page


def test_a_missing_jinja2_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_agentperf.report.html import HtmlUnavailable, render

    monkeypatch.setitem(sys.modules, "jinja2", None)  # import jinja2 now raises ImportError
    with pytest.raises(HtmlUnavailable, match=r"pytest-agentperf\[html\]"):
        render([], plugin_version="x")


def test_a_file_that_is_not_a_report_is_not_replaced(project: pytest.Pytester) -> None:
    mine = project.path / "notes.html"
    mine.write_text("<html>my notes</html>", encoding="utf-8")
    result = project.runpytest("--agentperf-html=notes.html", "-k", "streaming")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*HTML report*notes.html*"])
    assert mine.read_text(encoding="utf-8") == "<html>my notes</html>"


def _synthetic_record(i: int, n: int) -> Any:
    """A run of ``n`` calls with every per-call column filled (fixed seed)."""
    from pytest_agentperf.record import RunRecord
    from pytest_agentperf.results import CallTable, Window

    rng = numpy.random.default_rng(i)
    latency = rng.lognormal(numpy.log(0.2), 0.5, n)
    start = numpy.sort(rng.uniform(0, 30, n))
    status = (rng.uniform(size=n) < 0.05).astype(numpy.int8)
    calls = CallTable(
        start=start,
        actual=start,
        end=start + latency,
        status=status,
        ttft=latency * 0.3,
        input_tokens=rng.integers(100, 2000, n),
        output_tokens=rng.integers(50, 500, n),
        cost=rng.uniform(1e-5, 1e-3, n),
        model=numpy.zeros(n, dtype=numpy.int64),
        error_rows=numpy.flatnonzero(status).astype(numpy.int64),
        error_types=tuple("RateLimitError" for _ in numpy.flatnonzero(status)),
        names=("gpt-4o-mini",),
    )
    windows = tuple(Window(t, t + 1.0, n // 30, 1, n / 30, 0.2, 0.4, 100.0 + t) for t in range(30))
    result = make_result(latency[status == 0], name=f"run {i}", calls=calls, windows=windows)
    return RunRecord.of(f"tests/test_load.py::test_{i}", result)


def test_twenty_runs_of_a_thousand_calls_stay_under_two_megabytes() -> None:
    from pytest_agentperf.report.html import render

    page = render([_synthetic_record(i, 1000) for i in range(20)], plugin_version="x")
    assert len(_data(page)["runs"]) == 20
    assert len(page.encode("utf-8")) < 2_000_000


def test_more_calls_than_drawn_are_cut_keeping_every_failed_call_and_saying_so() -> None:
    from pytest_agentperf.report.html import MAX_POINTS, render

    record = _synthetic_record(1, MAX_POINTS + 5000)
    failed = int((record.result.calls.status != 0).sum())
    page = render([record], plugin_version="x")
    calls = _data(page)["runs"][0]["calls"]
    assert calls["cut"] and calls["shown"] == MAX_POINTS and calls["n"] == MAX_POINTS + 5000
    assert sum(s != 0 for s in calls["status"]) == failed
    assert f"shows {MAX_POINTS:,} of {MAX_POINTS + 5000:,} calls" in page


def test_without_the_call_table_the_page_says_what_is_missing() -> None:
    from pytest_agentperf.record import RunRecord
    from pytest_agentperf.report.html import render

    page = render([RunRecord.of("t.py::test_a", make_result([0.1, 0.2, 0.3]))], plugin_version="x")
    run = _data(page)["runs"][0]
    assert run["calls"] is None and run["windows"] is None
    assert sum(run["latency"]["hist"]["counts"]) == 3  # drawn from the latency samples
    assert "Not in this report: the per-call table" in page


# ----------------------------------------------------------------------------- a real browser


def _browser_or_skip() -> tuple[str, str]:
    """Chromium and chromedriver, else skip (outside CI) or fail (``CI=true``): in CI the
    browser test must run (``.ci/run`` installs them)."""
    reason = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        reason = "selenium is not installed (pip install -e '.[dev]')"
    chromium = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    driver = shutil.which("chromedriver")
    if reason is None and (chromium is None or driver is None):
        reason = "Chromium and chromedriver are not installed (apt-get install chromium "
        reason += "chromium-driver)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the HTML report's browser test must run in CI: {reason}")
        pytest.skip(reason)
    assert chromium is not None and driver is not None
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def _requests(browser: Any) -> tuple[list[str], list[str]]:
    """The URLs the page asked for, and the failed loads, from Chromium's network log."""
    asked, failed = [], []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            asked.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.loadingFailed":
            failed.append(json.dumps(message["params"]))
    return asked, failed


def test_the_page_draws_every_chart_in_a_real_browser_without_errors(
    report: Path, browser: Any
) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    browser.get(report.as_uri())
    charts = browser.execute_script(
        "return window.agentperfCharts.map(function (c) {"
        "  var canvas = c.chart.root.querySelector('canvas');"
        "  return {run: c.run, kind: c.kind, series: c.series,"
        "          width: canvas.clientWidth, height: canvas.clientHeight}; })"
    )
    console = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert console == []
    asked, failed = _requests(browser)
    assert failed == []
    assert [url for url in asked if url != report.as_uri()] == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check
    kinds: dict[str, set[str]] = {}
    for chart in charts:
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["series"] == SERIES[chart["kind"]], chart
        kinds.setdefault(chart["run"], set()).add(chart["kind"])
    base = {"latency-hist", "latency-cdf", "latency-time", "windows", "tokens", "cost"}
    assert base <= kinds["run0"] and base <= kinds["run2"]  # sim agents report usage: cost known
    assert base | {"ttft-hist", "ttft-time", "itl-hist"} <= kinds["run1"]
    assert "ttft-hist" not in kinds["run0"]
    # the malicious id is shown as text in the overview, not made an element
    label = browser.execute_script(
        "return document.querySelectorAll('#overview td.label a')[2].textContent"
    )
    assert EVIL in label
    assert browser.execute_script("return document.querySelectorAll('main img').length") == 0


def test_a_page_rendered_from_a_json_report_without_calls_opens_cleanly(
    project: pytest.Pytester, browser: Any
) -> None:
    from pytest_agentperf.cli import main

    project.runpytest_subprocess("--agentperf-json=r.json").assert_outcomes(passed=3)
    out = project.path / "from-json.html"
    assert main(["report", str(project.path / "r.json"), "--html", str(out)]) == 0
    browser.get(out.as_uri())
    kinds = browser.execute_script(
        "return window.agentperfCharts.map(function (c) { return c.kind; })"
    )
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert kinds.count("latency-hist") == 3 and "latency-time" not in kinds
    assert "Not in this report: the per-call table" in out.read_text(encoding="utf-8")


def test_the_browser_test_fails_in_ci_without_a_browser_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"must run in CI.*chromium-driver"):
        _browser_or_skip()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="Chromium and chromedriver"):
        _browser_or_skip()


def test_every_asset_of_the_page_is_package_data() -> None:
    """The wheel carries the template, our script and styles, and uPlot with its licence."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["pytest_agentperf"]
    package = root / "pytest_agentperf"
    assets = [p for p in (package / "report" / "html_assets").rglob("*") if p.is_file()]
    names = {p.name for p in assets}
    assert {"report.html.j2", "report.js", "report.css", "uPlot.iife.min.js"} <= names
    assert {"uPlot.min.css", "uPlot.LICENSE"} <= names
    for asset in assets:
        relative = asset.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
