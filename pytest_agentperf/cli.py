"""The ``agentperf`` console script (also ``python -m pytest_agentperf``).

``agentperf report RESULTS.json --html PATH`` renders the HTML dashboard from a saved
``--agentperf-json`` report, so CI can keep the JSON and render the page later. Each command is
a subcommand of one parser, so more can be added (``agentperf history``).

Exit codes: 0 done, 2 the command line or its input was wrong (the message says what).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
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
