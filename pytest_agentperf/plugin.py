"""The pytest face of pytest-agentperf: options, marker, fixture, hooks; logic lives in the core.

Loading this module (pytest does it for every session) imports only light modules: options,
marker and ini registration are eager, while the engine, numpy, the baseline gate and the
integrations load on first use, through ``pipeline_of`` and ``gate_of``, when a perf test runs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import __version__
from . import report as reports
from .errors import AgentPerfWarning, PricingError, SettingsError
from .options import (
    COMPARE_MODES,
    DEFAULT_BASELINE_PATH,
    DEFAULT_HISTORY_KEEP,
    DEFAULT_HISTORY_SESSIONS,
    MARKER,
    MIN_HISTORY_SESSIONS,
    REGRESSION_MODES,
    parse_count,
    parse_probability,
    parse_scale,
)
from .units import Unit, parse

if TYPE_CHECKING:
    from .baseline.gate import BaselineGate, GateOptions
    from .fixture import AgentPerf
    from .history.gate import HistoryGate
    from .history.recorder import HistoryOptions, Recorded
    from .pipeline import RunPipeline
    from .pricing import PriceTable
    from .progress import ProgressLine
    from .record import RunRecord
    from .report.protocol import ReportContext

pipeline_key = pytest.StashKey["RunPipeline"]()
gate_key = pytest.StashKey["BaselineGate"]()
history_gate_key = pytest.StashKey["HistoryGate"]()
fixture_key = pytest.StashKey["AgentPerf"]()
cost_key = pytest.StashKey["CostOptions"]()
call_passed_key = pytest.StashKey[bool]()

CostOptions = tuple["PriceTable", tuple[str, ...], "int | None"]
"""The price table, the what-if models and the monthly call count."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentperf", "agent performance tests (pytest-agentperf)")
    group.addoption(
        "--agentperf-skip", action="store_true", help="skip every agent performance test"
    )
    group.addoption(
        "--agentperf-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply requests= and duration= of every run by F (e.g. 0.1 for a smoke run)",
    )
    for entry in reports.WRITERS:  # each report writer's options
        if entry.option and entry.metavar is None:
            group.addoption(entry.option, action="store_true", help=entry.help)
        elif entry.option:
            group.addoption(entry.option, metavar=entry.metavar, default=None, help=entry.help)
        for extra in entry.options:
            if extra.metavar is None:
                group.addoption(extra.option, action="store_true", help=extra.help)
            else:
                group.addoption(
                    extra.option, metavar=extra.metavar, default=extra.default, help=extra.help
                )
    group.addoption(
        "--agentperf-baseline",
        action="store_true",
        help="save this run's results as the baseline (no comparison in this run)",
    )
    group.addoption(
        "--agentperf-baseline-path",
        metavar="PATH",
        default=None,
        help=f"baseline file (default: ini agentperf_baseline_path, else {DEFAULT_BASELINE_PATH})",
    )
    group.addoption(
        "--agentperf-no-compare",
        action="store_true",
        help="do not compare with the baseline",
    )
    group.addoption(
        "--agentperf-tolerance",
        metavar="PCT",
        default="10%",
        help="change of p50/p95/tokens/cost tolerated before a regression (default 10%%)",
    )
    group.addoption(
        "--agentperf-regression",
        choices=REGRESSION_MODES,
        default="fail",
        help="a regression fails its test (fail, default) or is only reported (warn)",
    )
    group.addoption(
        "--agentperf-confirm",
        action="store_true",
        help="measure a regressed run once more before failing its test; fail only when the "
        "second measurement regresses too",
    )
    group.addoption(
        "--agentperf-columns",
        metavar="NAME[,NAME...]|all",
        default=None,
        help="columns of the summary table (default: the most important that fit the terminal)",
    )
    group.addoption(
        "--agentperf-cost-whatif",
        metavar="MODEL[,MODEL...]",
        default=None,
        help="also show what each run would cost with the same tokens on these models",
    )
    group.addoption(
        "--agentperf-workers",
        metavar="SPEC",
        default=None,
        help="split every perf run over these execnet gateways, e.g. 2*popen or "
        "ssh=host//python=python3 (comma-separated; needs pytest-agentperf[workers])",
    )
    group.addoption(
        "--agentperf-findings",
        choices=("on", "off"),
        default="on",
        help="list the findings (what to do, with the evidence) under the summary table and in "
        "the Markdown summary (default on; the JSON report always has them)",
    )
    _add_history_options(group, parser)
    parser.addini(
        "agentperf_prices",
        "JSON price file (LiteLLM's schema) merged over the bundled prices; relative to rootdir",
        default="",
    )
    parser.addini(
        "agentperf_monthly_calls",
        "calls per month: adds the projected monthly cost of each run to the summary",
        default="",
    )
    parser.addini(
        "agentperf_baseline_path",
        f"baseline file, relative to the rootdir (default {DEFAULT_BASELINE_PATH})",
        default=DEFAULT_BASELINE_PATH,
    )


def _add_history_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """Options of the run history (docs/history.md)."""
    group.addoption(
        "--agentperf-history",
        metavar="DIR",
        default=None,
        help="add this session's results to the run history in DIR (ini agentperf_history)",
    )
    group.addoption(
        "--agentperf-compare",
        choices=COMPARE_MODES,
        default="baseline",
        help="judge each run against the baseline file (default) or the last N sessions of "
        "the run history on this machine (history)",
    )
    group.addoption(
        "--agentperf-history-sessions",
        metavar="N",
        default=None,
        help="past sessions the history gate judges a run against (default: ini "
        f"agentperf_history_sessions, else {DEFAULT_HISTORY_SESSIONS})",
    )
    parser.addini("agentperf_history", "run history folder, relative to the rootdir", default="")
    parser.addini(
        "agentperf_history_keep",
        f"sessions the run history keeps per machine (default {DEFAULT_HISTORY_KEEP})",
        default=str(DEFAULT_HISTORY_KEEP),
    )
    parser.addini(
        "agentperf_history_sessions",
        f"past sessions the history gate uses (default {DEFAULT_HISTORY_SESSIONS})",
        default=str(DEFAULT_HISTORY_SESSIONS),
    )
    parser.addini(
        "agentperf_history_p",
        "p-value a change point must stay below (default 0.001)",
        default="0.001",
    )
    parser.addini(
        "agentperf_history_min_change",
        "smallest relative change reported as a change point (default 5%)",
        default="5%",
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): run the test's agent under load and check budgets "
        "(see pytest-agentperf docs)",
    )
    config.addinivalue_line(
        "markers",
        f"{SERVER_MARKER}(**options): options of the agentperf_openai_server fixture's server "
        "(ttft, token_rate, latency, error_rate, ...)",
    )
    # Options are checked here, so that a bad one stops the session at once; the state that
    # runs need (pipeline_of, gate_of) is built when the first perf test asks for it.
    if _scale(config) != 1.0 and config.getoption("agentperf_baseline"):
        raise pytest.UsageError(
            "--agentperf-scale with --agentperf-baseline: a scaled run must not replace a full "
            "one in the baseline; record the baseline without --agentperf-scale"
        )
    _tolerance(config)
    _table_columns(config)
    _history_settings(config)  # bad history options stop the session at once
    _worker_specs(config)
    if config.getoption("agentperf_log_content", False) and not config.getoption(
        "agentperf_log", None
    ):
        raise pytest.UsageError(
            "--agentperf-log-content adds text to the per-call log: give --agentperf-log=PATH too"
        )
    if _cost_options_given(config):  # reads the user's price file: only when one is named
        config.stash[cost_key] = _cost_options(config)
    if not hasattr(config, "workerinput"):
        collector = _Collector(config)
        config.pluginmanager.register(collector, "agentperf-collector")
        for entry in reports.WRITERS:
            if entry.enabled(config.getoption):
                problem = entry.missing_extra()  # stop before any load test runs
                if problem:
                    raise pytest.UsageError(problem)
                writer = _WriterHook(entry, collector)
                config.pluginmanager.register(writer, f"agentperf-writer-{entry.name}")


def pipeline_of(config: pytest.Config) -> RunPipeline:
    """This process's run pipeline (prices, progress line, baseline gate), built on first use.

    The first ``agentperf`` fixture builds it, so a session without perf tests never loads the
    engine, numpy or an integration.
    """
    pipeline = config.stash.get(pipeline_key, None)
    if pipeline is None:
        from .pipeline import RunPipeline

        pipeline = RunPipeline(
            scale=_scale(config),
            confirm=bool(config.getoption("agentperf_confirm")),
            detail=_detail(config),
        )
        prices, whatif, monthly = config.stash.get(cost_key, None) or _cost_options(config)
        pipeline.prices, pipeline.whatif_models, pipeline.monthly_calls = prices, whatif, monthly
        pipeline.workers = _worker_specs(config)
        if _is_controller_terminal(config):
            pipeline.progress = _progress_factory(config)
        gate = gate_of(config)
        history_gate = history_gate_of(config)
        pipeline.after_run.append(history_gate.after_run if history_gate else gate.after_run)
        pipeline.gates.append(gate.check)
        config.stash[pipeline_key] = pipeline
    return pipeline


def _worker_specs(config: pytest.Config) -> tuple[str, ...]:
    """``--agentperf-workers``: the gateway specs every run is split over (empty: none)."""
    text = config.getoption("agentperf_workers", None)
    if not text:
        return ()
    from .workers.spec import parse_specs

    try:
        return parse_specs(text)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None


def _detail(config: pytest.Config) -> int:
    """What runs keep of each call: what the outputs this session asked for read."""
    from .engine import KEEP_CALLS, KEEP_CONTENT

    if not reports.needs_calls(config.getoption):
        return 0
    return KEEP_CONTENT if config.getoption("agentperf_log_content", False) else KEEP_CALLS


def gate_of(config: pytest.Config) -> BaselineGate:
    """The baseline gate of this process (it reads the baseline file), built on first use."""
    gate = config.stash.get(gate_key, None)
    if gate is None:
        from .baseline.gate import BaselineGate

        gate = BaselineGate(_gate_options(config))
        config.stash[gate_key] = gate
    return gate


def _history_settings(config: pytest.Config) -> tuple[Path, int, float, float] | None:
    """The history folder, sessions kept, p and minimum change (None when no folder is
    named); a bad value is a usage error. Cheap: configure calls it."""
    cli = config.getoption("agentperf_history", None)
    ini = str(config.getini("agentperf_history") or "").strip()
    history_mode = config.getoption("agentperf_compare", "baseline") == "history"
    if not cli and not ini:
        if history_mode:
            raise pytest.UsageError(
                "--agentperf-compare=history needs a run history: give "
                "--agentperf-history=DIR (or the ini option agentperf_history)"
            )
        return None
    folder = config.invocation_params.dir / cli if cli else config.rootpath / ini
    try:
        keep = parse_count(config.getini("agentperf_history_keep"), "agentperf_history_keep")
        _history_sessions(config)
        p = parse_probability(config.getini("agentperf_history_p"), "agentperf_history_p")
        min_change = parse(
            str(config.getini("agentperf_history_min_change")),
            Unit.FRACTION,
            key="agentperf_history_min_change",
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    return folder, keep, p, min_change


def _history_options(config: pytest.Config) -> HistoryOptions | None:
    """The run history's options, None when no history folder is named. Imports the history
    package (and numpy): only when a folder is named."""
    settings = _history_settings(config)
    if settings is None:
        return None
    folder, keep, p, min_change = settings
    from .history.recorder import HistoryOptions
    from .history.series import Detection

    return HistoryOptions(
        folder=folder,
        keep=keep,
        detection=Detection(p=p, min_change=min_change),
        root=config.rootpath,
        workers=xdist_workers(config),
        scale=_scale(config),
    )


def _history_sessions(config: pytest.Config) -> int:
    cli = config.getoption("agentperf_history_sessions", None)
    if cli is not None:
        return parse_count(cli, "--agentperf-history-sessions", minimum=MIN_HISTORY_SESSIONS)
    value = config.getini("agentperf_history_sessions")
    return parse_count(value, "agentperf_history_sessions", minimum=MIN_HISTORY_SESSIONS)


def history_gate_of(config: pytest.Config) -> HistoryGate | None:
    """The history gate of this process (``--agentperf-compare=history``), built on first
    use; None in baseline mode or with ``--agentperf-no-compare``."""
    gate = config.stash.get(history_gate_key, None)
    if gate is not None:
        return gate
    if config.getoption("agentperf_compare") != "history" or config.getoption(
        "agentperf_no_compare"
    ):
        return None
    options = _history_options(config)
    assert options is not None  # configure refused history mode without a folder
    from .history.gate import HistoryGate
    from .history.recorder import this_machine
    from .history.store import machine_id

    gate = HistoryGate(
        options.folder,
        machine_id(this_machine(options.workers)),
        sessions=_history_sessions(config),
        tolerance=_tolerance(config),
        scale=_scale(config),
    )
    config.stash[history_gate_key] = gate
    return gate


def _scale(config: pytest.Config) -> float:
    try:
        return parse_scale(config.getoption("agentperf_scale"))
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None


def _cost_options_given(config: pytest.Config) -> bool:
    return bool(
        str(config.getini("agentperf_prices") or "").strip()
        or config.getoption("agentperf_cost_whatif")
        or str(config.getini("agentperf_monthly_calls") or "").strip()
    )


def _cost_options(config: pytest.Config) -> CostOptions:
    """The price table (bundled, or merged with the ini's file) and the what-if / monthly cost
    options; pricing needs no numpy, so configure can check them."""
    from .pricing import load_prices, parse_monthly_calls, parse_whatif

    name = str(config.getini("agentperf_prices") or "").strip()

    def warn(message: str) -> None:
        if not hasattr(config, "workerinput"):  # once, from the controller
            config.issue_config_time_warning(AgentPerfWarning(message), stacklevel=2)

    try:
        prices = load_prices(config.rootpath / name if name else None, warn=warn)
        whatif = parse_whatif(config.getoption("agentperf_cost_whatif"), prices)
        monthly = parse_monthly_calls(config.getini("agentperf_monthly_calls"))
    except (PricingError, AgentPerfWarning) as exc:  # a warning turned error by -W error
        raise pytest.UsageError(str(exc)) from None
    return prices, whatif, monthly


def _tolerance(config: pytest.Config) -> float:
    try:
        return parse(config.getoption("agentperf_tolerance"), Unit.FRACTION, key="tolerance")
    except SettingsError as exc:
        raise pytest.UsageError(f"--agentperf-tolerance: {exc}") from None


def _gate_options(config: pytest.Config) -> GateOptions:
    from .baseline.gate import GateOptions

    cli = config.getoption("agentperf_baseline_path")
    if cli:
        path = config.invocation_params.dir / cli
    else:
        path = config.rootpath / str(config.getini("agentperf_baseline_path"))
    return GateOptions(
        path=path,
        save=bool(config.getoption("agentperf_baseline")),
        compare=not config.getoption("agentperf_no_compare")
        and config.getoption("agentperf_compare") != "history",
        tolerance=_tolerance(config),
        mode=config.getoption("agentperf_regression"),
        root=config.rootpath,
        scale=_scale(config),
        workers=xdist_workers(config),
    )


def xdist_workers(config: pytest.Config) -> int | None:
    """pytest-xdist workers of this session: 0 without xdist, None when it cannot be told."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a worker: the controller told it how many there are
        count = workerinput.get("workercount")
        return count if isinstance(count, int) else None
    if config.pluginmanager.get_plugin("dsession") is None:  # xdist absent or -n 0 / -p no:xdist
        return 0
    count = getattr(config.option, "numprocesses", None)  # resolved to a number by xdist
    return count if isinstance(count, int) else None


def _table_columns(config: pytest.Config) -> tuple[str, ...] | None:
    from .report.columns import parse_columns

    try:
        return parse_columns(config.getoption("agentperf_columns"))
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None


def _table_width(config: pytest.Config) -> int | None:
    """The terminal's width as pytest sees it (``COLUMNS`` wins); 120 in a log without a tty;
    None without a terminal reporter."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return None
    if is_tty(tr) or os.environ.get("COLUMNS"):
        tw = getattr(tr, "_tw", None)
        width = getattr(tw, "fullwidth", None)
        return int(width) if width else shutil.get_terminal_size().columns
    return 120


def _is_controller_terminal(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and not os.environ.get("CI")


def is_tty(terminalreporter: Any) -> bool:
    """Whether pytest writes to a terminal: ``TerminalReporter.isatty`` is a plain bool in
    pytest 7.4 and 8.0, and a method (a callable bool) in later releases."""
    isatty = terminalreporter.isatty
    return bool(isatty() if callable(isatty) else isatty)


def _progress_factory(config: pytest.Config) -> Callable[[str], ProgressLine | None]:
    from .progress import ProgressLine

    def factory(label: str) -> ProgressLine | None:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is None or not is_tty(tr):
            return None
        capman = config.pluginmanager.get_plugin("capturemanager")

        def write(text: str) -> None:
            # the test's output is being captured: step around it to reach the terminal
            if capman is None:
                tr.write(text, flush=True)
                return
            with capman.global_and_fixture_disabled():
                tr.write(text, flush=True)

        return ProgressLine(label, write, width=shutil.get_terminal_size().columns)

    return factory


def _is_perf_item(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or "agentperf" in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("agentperf_skip"):
        return
    skip = pytest.mark.skip(reason="agent performance tests skipped (--agentperf-skip)")
    for item in items:
        if _is_perf_item(item):
            item.add_marker(skip)


def _marker_layers(item: pytest.Item) -> list[dict[str, Any]]:
    """The settings of every ``agent_perf`` marker of ``item``, farthest first (module, class,
    function, then a ``pytest.param(..., marks=...)``), so that nearer ones win when merged."""
    marks = list(reversed(list(item.iter_markers(MARKER))))
    # pytest lists a param's marks after the function's own, as if farther: put them last
    # (the first of a param's marks stays the nearest, as in pytest's own order)
    callspec = getattr(item, "callspec", None)
    for param_mark in reversed(list(getattr(callspec, "marks", ()))):
        if param_mark.name == MARKER:
            for i in range(len(marks) - 1, -1, -1):
                if marks[i] is param_mark or marks[i] == param_mark:
                    marks.append(marks.pop(i))
                    break
    layers = []
    for mark in marks:
        if mark.args:
            raise SettingsError(
                f"@pytest.mark.{MARKER} takes keyword settings only, got positional {mark.args!r}"
            )
        layers.append(dict(mark.kwargs))
    return layers


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(MARKER) is None:
        return
    from .settings import parse_settings

    gate_of(item.config)  # a perf test runs: the summary speaks of the baseline
    problem = None
    try:
        parse_settings(*_marker_layers(item))
    except SettingsError as exc:
        problem = str(exc)
    if problem is not None:  # failed outside the except block: no chained traceback
        pytest.fail(f"{item.nodeid}: invalid @pytest.mark.{MARKER}: {problem}", pytrace=False)
    if "agentperf" not in getattr(item, "fixturenames", ()):
        item.warn(
            AgentPerfWarning(
                f"{item.nodeid} is marked {MARKER} but does not use the agentperf fixture; "
                "call agentperf.run(...) or agentperf.arun(...) in it"
            )
        )


@pytest.fixture
def agentperf(request: pytest.FixtureRequest) -> Generator[AgentPerf, None, None]:
    """Run an agent under load: ``agentperf.run(fn, inputs)`` or ``await agentperf.arun(...)``."""
    from .fixture import AgentPerf

    item = request.node
    fixture = AgentPerf(
        pipeline_of(request.config),
        item.nodeid,
        _marker_layers(item),
        warn=lambda message: item.warn(AgentPerfWarning(message)),
    )
    item.stash[fixture_key] = fixture
    yield fixture
    __tracebackhide__ = True  # under -W error the warning fails the test: show it, not us
    # A marked test that passed without a single run (a forgotten ``await`` on arun, or no
    # call at all) measured nothing: say so. Torn down after the fixtures that use this one,
    # so runs made in their teardown count. A skipped or failed test is not warned about.
    marked = item.get_closest_marker(MARKER) is not None
    if marked and not fixture.records and item.stash.get(call_passed_key, False):
        item.warn(
            AgentPerfWarning(
                f"{item.nodeid} is marked {MARKER} but made no run, so nothing was measured; "
                "call agentperf.run(...) or await agentperf.arun(...) in it "
                "(an arun(...) without await never runs)"
            )
        )


SERVER_MARKER = "agentperf_openai_server"


@pytest.fixture
def agentperf_openai_server_factory() -> Generator[Callable[..., Any], None, None]:
    """``make(**options)`` starts a ``pytest_agentperf.testing.OpenAIServer`` with those options
    (``ttft``, ``token_rate``, ``latency``, ``error_rate``, ``model``, ...); every server it
    started is stopped when the test ends. Function scope. Needs the ``server`` extra."""
    from .testing import OpenAIServer

    started: list[OpenAIServer] = []

    def make(**options: Any) -> OpenAIServer:
        server = OpenAIServer(**options)
        server.start()
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def agentperf_openai_server(
    request: pytest.FixtureRequest, agentperf_openai_server_factory: Callable[..., Any]
) -> Any:
    """A started ``pytest_agentperf.testing.OpenAIServer`` (OpenAI-compatible, 127.0.0.1), one
    per test (function scope), stopped after it; point the client at ``.base_url``. Its options
    come from ``@pytest.mark.agentperf_openai_server(ttft=0.05, error_rate=0.02, ...)`` on the
    test, class or module (nearest wins), else the defaults. Needs the ``server`` extra."""
    options: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers(SERVER_MARKER))):
        options.update(mark.kwargs)
    return agentperf_openai_server_factory(**options)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    if call.when == "call":
        item.stash[call_passed_key] = outcome.get_result().passed
    fixture = item.stash.get(fixture_key, None)
    if fixture is not None:  # runs made in this phase (a fixture's setup or teardown too)
        runs = fixture.take_new_records()
        if runs:  # as JSON data: the report crosses to the xdist controller as it is
            report = outcome.get_result()
            report.agentperf_runs = [r.to_dict() for r in runs]
            from .report.junit import properties

            # Each report copies item.user_properties when it is made, and junitxml reads the
            # teardown report's: add to both, so runs made in teardown get in too.
            figures = [p for r in runs for p in properties(r)]
            item.user_properties.extend(figures)
            report.user_properties.extend(figures)


class _Collector:
    """Gathers run records from test reports (also those xdist workers send), saves the
    baseline and calls ``pytest_agentperf_session_finished``; controlling process only."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: list[RunRecord] = []
        self.executed: set[str] = set()
        self.passed: set[str] = set()
        self.saved: str | None = None
        self.written: list[str] = []
        """Lines the writers returned (where each report went), shown above the section."""
        self.failures: list[str] = []
        """Lines of outputs that could not be written: they fail the session."""
        self.section: list[str] = []
        """The lines of the terminal summary section (``ReportContext.echo``)."""
        self._context: ReportContext | None = None
        self.history: Recorded | None = None
        """What writing the run history did (``--agentperf-history``), or None."""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and not report.skipped:
            self.executed.add(report.nodeid)
            if report.passed:
                self.passed.add(report.nodeid)
        runs = getattr(report, "agentperf_runs", None)
        if runs:
            from .record import RunRecord

            for data in runs:  # decoded once, here, whether from this process or a worker
                try:
                    record = RunRecord.from_dict(data)
                except ValueError as exc:  # e.g. a worker running another plugin version
                    line = f"ERROR: a run of {report.nodeid} could not be read: {exc}"
                    self.failures.append(line)
                    self.written.append(line)
                    continue
                self.records.append(record)
                self.config.hook.pytest_agentperf_run_finished(config=self.config, record=record)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Save the baseline unless interrupted, then hand every record to the
        ``pytest_agentperf_session_finished`` implementations (the report writers among
        them), once, here in the controlling process (also with ``-p no:terminal``). An output
        that cannot be written fails the session."""
        interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        gate = self.gate()
        if gate is not None:  # None: no perf test ran and no save was asked for
            self.saved, failed = gate.save_at_end(
                self.records,
                interrupted=interrupted,
                cwd=self.config.rootpath,
                complete=self.passed,
            )
            self.failures += [self.saved] if failed and self.saved else []
        self.write_history(interrupted)
        if self.records:  # the cross-run rules (a concurrency sweep), before any writer
            from .findings import session_findings

            self.records = session_findings(self.records)
        self.config.hook.pytest_agentperf_session_finished(
            config=self.config, records=tuple(self.records)
        )
        if self.failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.config.pluginmanager.get_plugin("terminalreporter") is None:
            import sys

            # no terminal summary will show them: what was written, a push that failed (a
            # warning, not a failure) and the outputs that could not be written
            lines = [*self.written, *(f for f in self.failures if f not in self.written)]
            for line in lines:
                sys.stderr.write(f"agentperf: {line}\n")

    def write_history(self, interrupted: bool) -> None:
        """Add this session to the run history (``--agentperf-history``), once, here."""
        options = _history_options(self.config)
        if options is None or not (self.records or interrupted):
            return
        from .history.recorder import record_session

        self.history = record_session(
            options,
            self.records,
            interrupted=interrupted,
            plugin_version=__version__,
            cwd=self.config.rootpath,
        )
        if self.history.line:
            self.written.append(self.history.line)
            if self.history.failed:
                self.failures.append(self.history.line)

    def context(self) -> ReportContext:
        """What the writers get beside the records: the gate's lines, notes, a terminal.
        Built once, after the baseline was saved."""
        if self._context is None:
            from .report.protocol import ReportContext

            gate = self.gate()
            notes = (self.saved,) if self.saved else ()
            summary: list[str] = []
            # with no perf run the section speaks only of a baseline problem or a save
            if gate is not None and (self.records or gate.problem or notes):
                from .baseline.gate import summary_lines

                summary = summary_lines(gate, self.records, self.executed)
            history_gate = history_gate_of(self.config) if self.records else None
            if history_gate is not None:
                from .baseline.gate import display_path
                from .history.gate import summary_lines as history_lines

                shown = display_path(history_gate.folder)
                summary += history_lines(history_gate, self.records, shown)
            if self.history is not None:
                summary += self.history.changes
            self._context = ReportContext(
                plugin_version=__version__,
                root=self.config.rootpath,
                summary=tuple(summary),
                notes=notes,
                echo=self.section.append,
                width=_table_width(self.config),
                columns=_table_columns(self.config),
                findings=self.config.getoption("agentperf_findings") != "off",
            )
        return self._context

    def gate(self) -> BaselineGate | None:
        """The baseline gate; None when no perf test ran here or on a worker and no save was
        asked for: then the baseline (and numpy) is never loaded."""
        config = self.config
        if self.records or gate_key in config.stash or config.getoption("agentperf_baseline"):
            return gate_of(config)
        return None

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.written:
            terminalreporter.write_line(f"agentperf: {line}")
        if self.section:
            terminalreporter.write_sep("=", "agent performance")
            for line in self.section:
                terminalreporter.write_line(line)


class _WriterHook:
    """One report writer (``reports.WRITERS``) as an implementation of
    ``pytest_agentperf_session_finished``: the way a conftest.py adds an output."""

    def __init__(self, entry: reports.WriterEntry, collector: _Collector) -> None:
        self.entry = entry
        self.collector = collector

    def pytest_agentperf_session_finished(
        self, config: pytest.Config, records: Sequence[RunRecord]
    ) -> None:
        context = self.collector.context()
        if self.entry.always_on and not context.has_news(records):
            return
        from .report.output import write_report

        writer = self.entry.create(config.getoption)
        line, failed = write_report(
            writer.label, writer.target, lambda: writer.write(records, context)
        )
        if line:
            self.collector.written.append(line)
        if failed and line:
            self.collector.failures.append(line)


__all__ = ["agentperf", "agentperf_openai_server", "agentperf_openai_server_factory"]
