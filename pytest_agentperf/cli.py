"""The ``agentperf`` console script (also ``python -m pytest_agentperf``).

``agentperf report RESULTS.json --html PATH`` renders the HTML dashboard from a saved
``--agentperf-json`` report, so CI can keep the JSON and render the page later.
``agentperf history [DIR]`` shows each test's trend and change points from a run history
(``--agentperf-history``). Each command is a subcommand of one parser.

Exit codes: 0 done, 2 the command line or its input was wrong (the message says what).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import AgentPerfError

if TYPE_CHECKING:
    from .record import RunRecord

USAGE_ERROR = 2
"""Exit code of a wrong command line, or an input file that is missing or not a report."""


class InputError(AgentPerfError):
    """The input file is missing or is not a pytest-agentperf JSON report."""


def load_records(path: str | Path) -> list[RunRecord]:
    """The run records of the JSON report at ``path``. Raises ``InputError`` saying what is
    wrong with it (missing, not JSON, not a report, a run that does not decode)."""
    from .codec import DecodeError
    from .record import RunRecord
    from .report.json import FORMAT

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{source}: no such file (write one with --agentperf-json)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot be read: {exc}") from None
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not JSON ({exc})") from None
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or doc.get("format", FORMAT) != FORMAT:
        raise InputError(
            f"{source}: not a pytest-agentperf JSON report (expected an object with "
            f'"format": "{FORMAT}" and "runs"; write one with --agentperf-json)'
        )
    records = []
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            raise InputError(f"{source}: run {i} is not an object")
        try:
            records.append(RunRecord.from_dict(run))
        except (DecodeError, ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{source}: run {i} cannot be read: {exc}") from None
    return records


def _report(args: argparse.Namespace) -> int:
    from .report import html

    records = load_records(args.results)
    written = html.write(args.html, records, __version__, source=str(args.results))
    print(f"HTML report of {len(records)} runs written to {written}")
    return 0


DEFAULT_HISTORY_DIR = ".agentperf/history"
"""The folder ``agentperf history`` reads when none is given."""


def _since(text: str) -> datetime:
    """A ``--since`` date (``2026-11-01`` or ``2026-11-01T12:00``), read as UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _history(args: argparse.Namespace) -> int:
    from .history.changepoints import change_points
    from .history.series import METRIC_KEYS, Detection, build_series
    from .history.store import load_history

    folder = Path(args.folder)
    if not folder.is_dir():
        raise InputError(
            f"{folder}: no such folder (a session writes one with --agentperf-history={folder})"
        )
    metrics = [m.strip() for part in args.metric or [] for m in part.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRIC_KEYS]
    if unknown:
        raise InputError(f"unknown metric {unknown[0]!r}: choose from {', '.join(METRIC_KEYS)}")
    detection = Detection(p=args.p, min_change=args.min_change, window=args.window)
    try:
        change_points([0.0] * 2, p=detection.p, window=detection.window)
    except ValueError as exc:  # the options themselves are wrong
        raise InputError(str(exc)) from None
    history = load_history(folder, machine=args.machine)
    for problem in history.problems:
        print(f"agentperf history: warning: {problem}", file=sys.stderr)
    found = build_series(
        history,
        metrics=metrics or METRIC_KEYS,
        test=args.test,
        since=args.since,
        all_machines=args.all_machines,
        detection=detection,
    )
    if args.html:
        from .history import page

        written = page.write(args.html, found, plugin_version=__version__, source=str(folder))
        print(f"history page of {len(found)} series written to {written}", file=sys.stderr)
    if args.json:
        from .history.view import as_json

        print(json.dumps(as_json(found), indent=1, allow_nan=False))
    else:
        from .history.view import table

        print(table(found))
    return 0


def _add_history(commands: Any) -> None:
    from .history.changepoints import DEFAULT_MIN_CHANGE, DEFAULT_P, DEFAULT_WINDOW

    history = commands.add_parser(
        "history",
        help="trends and change points of a run history (--agentperf-history)",
        description="Show, per test, run and metric, the latest value, the trend and each "
        "change point (E-Divisive means with a t-test) of a run history folder.",
    )
    history.add_argument(
        "folder",
        metavar="DIR",
        nargs="?",
        default=DEFAULT_HISTORY_DIR,
        help=f"the history folder (default {DEFAULT_HISTORY_DIR})",
    )
    history.add_argument("--test", metavar="TEXT", help="only runs whose 'test [run]' has TEXT")
    history.add_argument(
        "--metric",
        metavar="NAME[,NAME]",
        action="append",
        help="only these metrics: p50, p95, ttft_p95, error_rate, throughput, "
        "tokens_per_call, cost_per_call (default all)",
    )
    history.add_argument("--since", metavar="DATE", type=_since, help="only sessions from DATE")
    history.add_argument("--machine", metavar="ID", help="only this machine's sessions")
    history.add_argument(
        "--all-machines",
        action="store_true",
        help="put every machine's sessions in one series (default: one series per machine)",
    )
    history.add_argument(
        "--p", type=float, default=DEFAULT_P, help=f"significance (default {DEFAULT_P})"
    )
    history.add_argument(
        "--min-change",
        type=float,
        default=DEFAULT_MIN_CHANGE,
        metavar="FRACTION",
        help=f"smallest relative change reported (default {DEFAULT_MIN_CHANGE})",
    )
    history.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"sessions per window of the search (default {DEFAULT_WINDOW})",
    )
    history.add_argument("--json", action="store_true", help="print JSON instead of tables")
    history.add_argument("--html", metavar="PATH", help="also draw each series to PATH")
    history.set_defaults(run=_history)


def parser() -> argparse.ArgumentParser:
    """The ``agentperf`` command line: one subcommand per task."""
    top = argparse.ArgumentParser(
        prog="agentperf", description="pytest-agentperf: work with saved results."
    )
    top.add_argument("--version", action="version", version=f"pytest-agentperf {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    report = commands.add_parser(
        "report",
        help="render a saved --agentperf-json report",
        description="Render a JSON report written by --agentperf-json as an HTML dashboard.",
    )
    report.add_argument("results", metavar="RESULTS.json", help="a --agentperf-json report")
    report.add_argument(
        "--html", metavar="PATH", required=True, help="write the HTML dashboard to PATH"
    )
    report.set_defaults(run=_report)
    _add_history(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (AgentPerfError, OSError) as exc:
        print(f"agentperf {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return code
