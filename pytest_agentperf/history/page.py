"""``agentperf history --html PATH``: one offline page, a chart per series with its change
points marked, drawn by the HTML report's vendored uPlot."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import FileKind, write_atomic
from .series import Series, describe

MARKER = "<!-- pytest-agentperf history page -->"


def _is_page(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MARKER) + 32).startswith(b"<!DOCTYPE html>\n" + MARKER.encode())


KIND = FileKind("pytest-agentperf history page", _is_page)

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#1f2328}
h1{font-size:1.4em}h2{font-size:1.05em;margin:1.6em 0 .3em}
.meta,.cp{color:#57606a;font-size:.92em}.cp li{margin:.15em 0}
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("history-data").textContent);
  data.series.forEach(function (s, i) {
    var el = document.getElementById("chart-" + i);
    var marks = s.values.map(function (v, j) { return s.changes.indexOf(j) >= 0 ? v : null; });
    new uPlot({
      width: Math.min(900, document.body.clientWidth - 40), height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: s.unit, size: 70 }],
      series: [
        {},
        { label: s.metric, stroke: "#0969da", width: 1.5 },
        { label: "change point", stroke: "#cf222e", width: 0, paths: function () { return null; },
          points: { show: true, size: 11, stroke: "#cf222e", fill: "#cf222e" } }
      ]
    }, [s.times, s.values, marks], el);
  });
})();
"""


def render(all_series: Sequence[Series], *, plugin_version: str, source: str) -> str:
    """The page: a heading, then per series its chart and its change points as a list."""
    from ..report.html import chart_assets, script_json

    uplot_js, uplot_css = chart_assets()
    data = {
        "series": [
            {
                "metric": s.metric.name,
                "unit": s.metric.unit.value,
                "times": [p.created.timestamp() for p in s.points],
                "values": [p.value for p in s.points],
                "changes": [cp.index for cp in s.change_points],
            }
            for s in all_series
        ]
    }
    parts = [
        "<!DOCTYPE html>",
        MARKER,
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'\">",
        f'<meta name="generator" content="pytest-agentperf {html.escape(plugin_version)}">',
        "<title>Agent performance history</title>",
        f"<style>{uplot_css}</style><style>{_STYLE}</style></head><body>",
        "<h1>Agent performance history</h1>",
        f'<p class="meta">from {html.escape(source)} · {len(all_series)} series · '
        "red points: change points (E-Divisive means, t-test)</p>",
    ]
    if not all_series:
        parts.append("<p>No session matches.</p>")
    for i, s in enumerate(all_series):
        title = f"{s.label} · {s.metric.name} · machine {s.machine}"
        parts.append(f'<h2>{html.escape(title)}</h2><div id="chart-{i}"></div>')
        if s.change_points:
            items = "".join(f"<li>{html.escape(describe(s, cp))}</li>" for cp in s.change_points)
            parts.append(f'<ul class="cp">{items}</ul>')
    parts += [
        f'<script type="application/json" id="history-data">{script_json(data)}</script>',
        f"<script>{uplot_js}</script>",
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write(
    path: str | os.PathLike[str],
    all_series: Sequence[Series],
    *,
    plugin_version: str,
    source: str,
) -> Path:
    """Write the page atomically (only over a page of ours); returns the path written."""
    text = render(all_series, plugin_version=plugin_version, source=source)
    return write_atomic(path, text, kind=KIND)
