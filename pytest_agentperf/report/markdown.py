"""``--agentperf-markdown``: a Markdown summary of the session, also appended to GitHub's job
summary (``GITHUB_STEP_SUMMARY``).

The summary is a heading, a one-line verdict (the runs counted by status), the table of runs
(the terminal table's cells, every column), what broke, the runs against their baseline
(baseline vs now), findings, warnings and the plugin's notes. Every string that came from a
test (node ids, run names, error messages) is redacted, then escaped, so a parametrize id
cannot break the table or inject HTML into a CI page.

GitHub refuses a step summary over 1 MiB (and with it what earlier commands of the step wrote),
so what is appended there is cut to fit below that: table rows first (the passing runs before
the others), then the lines under the table; the verdict is never cut. The file named by
``--agentperf-markdown`` is never cut.

This module is imported whenever ``GITHUB_STEP_SUMMARY`` is set, i.e. in every pytest session
of a GitHub Actions job: it stays light and writes nothing when there is nothing to report.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import FileKind, write_atomic
from ..redact import redact
from .protocol import ReportContext

if TYPE_CHECKING:
    from ..record import RunRecord

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
"""The file GitHub Actions shows as the job summary; set by the runner for each step."""
STEP_SUMMARY_LIMIT = 1024 * 1024
"""GitHub's limit on one step's summary, in bytes: the file is kept below it."""
MARKER = "<!-- pytest-agentperf summary -->"
"""First line of every summary: invisible when rendered, it marks a file as ours."""
HEADING = "## Agent performance"


def _is_summary(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MARKER)) == MARKER.encode()


KIND = FileKind("pytest-agentperf Markdown summary", _is_summary)
"""Only such a file (or none, or an empty one) is replaced by ``--agentperf-markdown``."""

_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "~": "\\~",
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\r": " ",
        "\n": " ",
    }
)


def escape(text: str) -> str:
    """``text`` as literal Markdown text that also fits in a table cell: no pipe ends the cell,
    no newline ends the row, no backtick, emphasis or link starts, no HTML tag opens."""
    return text.translate(_ESCAPES)


def safe(text: str) -> str:
    """``text`` redacted (secrets masked), then escaped: for every string a test supplied."""
    return escape(redact(text))


def verdict(records: Sequence[RunRecord]) -> str:
    """The runs counted by status, in the order of ``RunStatus``: "2 runs: 1 PASS, 1 FAIL"."""
    from ..record import RunStatus

    counts = {s: sum(r.status is s for r in records) for s in RunStatus}
    parts = [f"{n} {s.value}" for s, n in counts.items() if n]
    head = f"{len(records)} run" + ("" if len(records) == 1 else "s")
    return head + (": " + ", ".join(parts) if parts else "")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _bullets(title: str, items: Sequence[str]) -> list[str]:
    return [f"### {title}", "", *(f"- {item}" for item in items), ""] if items else []


@dataclass(frozen=True)
class Summary:
    """A summary in parts, so that it can be cut to a size without cutting the verdict."""

    verdict: str
    table_head: tuple[str, ...]
    """The table's header and delimiter rows (empty without runs)."""
    rows: tuple[str, ...]
    keep_first: tuple[int, ...]
    """Indexes of ``rows`` in the order they are kept when rows must be cut (runs that did
    not pass first)."""
    tail: tuple[str, ...]
    """The lines under the table: what broke, the baseline, findings, warnings, notes."""

    def lines(self, rows: int | None = None, tail: int | None = None) -> list[str]:
        """Every line, with only the first ``rows`` rows of ``keep_first`` (shown in table
        order) and the first ``tail`` lines of the tail (None: all), and a line saying what
        was cut."""
        kept = range(len(self.rows)) if rows is None else sorted(self.keep_first[:rows])
        out = [MARKER, HEADING, "", f"**{self.verdict}**", ""]
        if self.rows:
            out += [*self.table_head, *(self.rows[i] for i in kept), ""]
        cut_rows = len(self.rows) - len(kept)
        cut_tail = 0 if tail is None else len(self.tail) - tail
        if cut_rows or cut_tail:
            out += [_cut_note(cut_rows, len(self.rows), cut_tail), ""]
        out += self.tail if tail is None else self.tail[:tail]
        return out

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def _cut_note(rows: int, total: int, tail: int) -> str:
    cut = []
    if rows:
        cut.append(f"{rows} of {total} table rows")
    if tail:
        cut.append(f"the last {tail} lines")
    return (
        f"_Cut to stay below GitHub's 1 MiB step summary limit: {' and '.join(cut)}. "
        "The whole summary: `--agentperf-markdown=PATH`._"
    )


def _capacity(records: Sequence[RunRecord]) -> list[str]:
    """The capacity searches' table (``agentperf.capacity``), escaped; empty without one."""
    from .capacity import HEADERS, found_text, rows

    table = rows(records)
    if not table:
        return []
    found = [safe(found_text(r)) for r in records if r.result.capacity is not None]
    return [
        "### Capacity",
        "",
        _row(list(HEADERS)),
        _row([":--", *("--:" for _ in HEADERS[1:-1]), ":--"]),
        *(_row([safe(c) for c in row]) for row in table),
        "",
        *(f"- {line}" for line in found),
        "",
    ]


def _stages(records: Sequence[RunRecord]) -> list[str]:
    """The ramped runs' stages table (``stages=``), escaped; empty without one."""
    from .stages import HEADERS, rows

    table = rows(records)
    if not table:
        return []
    return [
        "### Stages",
        "",
        _row(list(HEADERS)),
        _row([":--", *("--:" for _ in HEADERS[1:-1]), ":--"]),
        *(_row([safe(c) for c in row]) for row in table),
        "",
    ]


def summary(records: Sequence[RunRecord], context: ReportContext) -> Summary:
    """The session's summary, every test-supplied string redacted and escaped."""
    from ..record import RunStatus
    from .terminal import evidence_text, failure_lines, table_cells

    rows: tuple[str, ...] = ()
    table_head: tuple[str, ...] = ()
    if records:
        headers, cells = table_cells(records)
        # the test and its status to the left, the figures to the right
        align = [":--", *("--:" for _ in headers[1:-1]), ":--"]
        table_head = (_row([safe(h) for h in headers]), _row(align))
        rows = tuple(_row([safe(c) for c in row]) for row in cells)
    keep_first = sorted(range(len(records)), key=lambda i: records[i].status is RunStatus.PASS)
    changes, shown = _changes(records)
    gate = [safe(line) for line in context.summary if line not in shown]
    findings = [
        f"**{f.severity}** "
        + safe(f"{f.rule}: {r.label}: {f.message} ({evidence_text(f.evidence)})")
        + (f" — {safe(f.advice)}" if f.advice else "")
        for r in records
        for f in r.findings
        if context.findings
    ]
    broken = failure_lines(records, with_findings=context.findings)
    tail = [
        *_capacity(records),
        *_stages(records),
        *_bullets("Budgets, errors and notes", [safe(line) for line in broken]),
        *changes,
        *arm_lines(records),
        *_bullets("Baseline", gate),
        *_bullets("Findings", findings),
        *_bullets("Warnings", [safe(f"{r.label}: {w}") for r in records for w in r.warnings]),
        *_bullets("Notes", [safe(note) for note in context.notes]),
    ]
    return Summary(verdict(records), table_head, rows, tuple(keep_first), tuple(tail))


def _changes(records: Sequence[RunRecord]) -> tuple[list[str], set[str]]:
    """The table of metrics that changed against the baseline (regressed, inconclusive or
    improved): baseline vs now. Also the gate's lines it says already (``MetricChange.text``
    after the run's label), so they are not listed twice."""
    from ..baseline.change import Status
    from ..units import format_value

    rows, shown = [], set()
    for r in records:
        comp = r.comparison
        if comp is None:
            continue
        for m in comp.metrics.values():
            if m.status is Status.UNCHANGED:
                continue
            shown.add(f"{r.label}: {m.text}")
            base, now = format_value(m.baseline, m.unit), format_value(m.current, m.unit)
            verdict_ = m.status.value + (f" ({m.note})" if m.note else "")
            cells = [r.label, m.name, base, now, m.change_text, verdict_]
            rows.append(_row([safe(c) for c in cells]))
    if not rows:
        return [], shown
    head = [
        _row(["test", "metric", "baseline", "now", "change (95% CI)", "verdict"]),
        _row([":--", ":--", "--:", "--:", "--:", ":--"]),
    ]
    return ["### Against the baseline", "", *head, *rows, ""], shown


def arm_lines(records: Sequence[RunRecord]) -> list[str]:
    """The A/B comparisons (``agentperf.compare``): each arm against its reference arm, every
    compared metric with its interval and verdict."""
    rows = []
    metrics: list[str] = []
    confidence = {r.arm.confidence for r in records if r.arm is not None}
    for r in records:
        arm = r.arm
        if arm is None or arm.is_reference:
            continue
        for known in arm.ratios:
            if known.metric not in metrics:
                metrics.append(known.metric)
    for r in records:
        arm = r.arm
        if arm is None:
            continue
        cells = [
            r.nodeid,
            arm.comparison,
            arm.arm,
            "reference" if arm.is_reference else arm.reference,
        ]
        for metric in metrics:
            ratio = arm.ratio(metric)
            cells.append("-" if ratio is None else ratio.text)
        rows.append(_row([safe(c) for c in cells]))
    if not rows:
        return []
    head = [
        _row(["test", "comparison", "arm", "against", *metrics]),
        _row([":--", ":--", ":--", ":--", *("--:" for _ in metrics)]),
    ]
    ci = f"{max(confidence):.0%} CI, " if len(confidence) == 1 else ""
    return [f"### A/B comparisons ({ci}arm over reference)", "", *head, *rows, ""]


def _size(lines: Sequence[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def fit(summary: Summary, limit: int) -> tuple[str | None, int]:
    """The summary's text in at most ``limit`` bytes (UTF-8) and the number of table rows cut:
    rows first (passing runs before the others), then the lines under the table. None when
    not even the verdict fits."""

    def largest(count: int, size_of: Callable[[int], int]) -> int | None:
        # the most items that fit: the size only grows with the count (binary search)
        if size_of(0) > limit:
            return None
        low, high = 0, count
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if size_of(mid) <= limit else (low, mid - 1)
        return low

    whole = summary.lines()
    if _size(whole) <= limit:
        return "\n".join(whole) + "\n", 0
    rows = largest(len(summary.rows), lambda k: _size(summary.lines(rows=k)))
    if rows is not None:
        return "\n".join(summary.lines(rows=rows)) + "\n", len(summary.rows) - rows
    tail = largest(len(summary.tail), lambda k: _size(summary.lines(rows=0, tail=k)))
    if tail is None:
        return None, len(summary.rows)
    return "\n".join(summary.lines(rows=0, tail=tail)) + "\n", len(summary.rows)


def append_step_summary(path: str, text: Summary, *, limit: int = STEP_SUMMARY_LIMIT) -> str:
    """Append the summary to GitHub's step summary file ``path``, keeping what is there and
    the file below ``limit`` bytes; return what happened, for the line under the table.

    Not a failure when it cannot be done (the file is full, or not a regular file): the
    session's own results are not at stake, so the line says why instead."""
    where = f"the GitHub step summary {path}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        existing, ends_line = 0, True
    except OSError as exc:
        return f"not appended to {where}: {exc.strerror or exc}"
    else:
        if not stat.S_ISREG(st.st_mode):
            return f"not appended to {where}: it is not a regular file"
        existing, ends_line = st.st_size, _ends_with_newline(path, st.st_size)
    # a blank line first: a line right after an earlier table would join it as a row
    sep = "" if not existing else ("\n" if ends_line else "\n\n")
    room = limit - 1 - existing - len(sep)  # the file stays strictly below the limit
    body, cut = fit(text, room)
    if body is None:
        return f"not appended to {where}: it already holds {existing:,} of {limit:,} bytes"
    try:
        with open(path, "a", encoding="utf-8", newline="\n") as f:
            f.write(sep + body)
    except OSError as exc:
        return f"not appended to {where}: {exc.strerror or exc}"
    total = len(text.rows)
    return f"appended to {where}" + (
        f" ({cut} of {total} table rows cut to stay below {limit:,} bytes)" if cut else ""
    )


def _ends_with_newline(path: str, size: int) -> bool:
    if not size:
        return True
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


class MarkdownWriter:
    """``--agentperf-markdown=PATH`` and GitHub's step summary: the ``ReportWriter``."""

    label = "Markdown summary"

    def __init__(
        self, path: str | None, *, step_summary: str | None, limit: int = STEP_SUMMARY_LIMIT
    ) -> None:
        self.path = path
        self.step_summary = step_summary
        """GitHub's step summary file to append to; None: none (or turned off)."""
        self.limit = limit
        self.target = path or step_summary or "nowhere"

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str | None:
        """Write the file (atomically) and append to the step summary; the step summary alone
        is left alone when there is nothing to report (a job's test step without perf tests)."""
        if self.path is None and (self.step_summary is None or not context.has_news(records)):
            return None
        text = summary(records, context)
        done = []
        if self.path is not None:
            written = write_atomic(self.path, text.text(), kind=KIND, root=context.root)
            done.append(f"written to {written}")
        if self.step_summary is not None:
            done.append(append_step_summary(self.step_summary, text, limit=self.limit))
        return f"{self.label} " + " and ".join(done)


def create(
    value: str | None, options: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> MarkdownWriter:
    """The writer of ``--agentperf-markdown=value`` (None: only the step summary), appending
    to ``GITHUB_STEP_SUMMARY`` when it is set unless ``--agentperf-no-step-summary``."""
    off = bool(options.get("agentperf_no_step_summary"))
    step = None if off else (environ.get(STEP_SUMMARY_ENV) or None)
    return MarkdownWriter(value or None, step_summary=step)
