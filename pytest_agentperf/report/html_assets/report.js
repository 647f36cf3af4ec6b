// pytest-agentperf HTML report: draws each run's charts with uPlot from the page's JSON data.
// Text from tests is never put into the page as HTML here: only textContent and chart labels.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("agentperf-data").textContent);
  var charts = [];
  window.agentperfCharts = charts; // for the report's own browser test: what was drawn

  var COLORS = { ok: "#0969da", error: "#cf222e", timeout: "#bf8700", second: "#8250df" };
  var HEIGHT = 220;

  function ms(values) {
    return values.map(function (v) { return v === null ? null : v * 1000; });
  }

  function figure(container, title, note) {
    var fig = document.createElement("figure");
    fig.className = "chart";
    var cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.appendChild(cap);
    if (note) {
      var p = document.createElement("div");
      p.className = "chart-note";
      p.textContent = note;
      fig.appendChild(p);
    }
    var body = document.createElement("div");
    fig.appendChild(body);
    container.appendChild(fig);
    return body;
  }

  function width(el) {
    return Math.max(320, (el.parentNode.clientWidth || 480) - 14);
  }

  function plot(runId, kind, container, title, note, opts, series) {
    var body = figure(container, title, note);
    opts.width = width(body);
    opts.height = HEIGHT;
    opts.legend = opts.legend || { live: true };
    opts.cursor = opts.cursor || { drag: { x: true, y: false } };
    var u = new uPlot(opts, series, body);
    body.parentNode.setAttribute("data-kind", kind);
    body.parentNode.setAttribute("data-series", String(u.series.length));
    charts.push({ run: runId, kind: kind, series: u.series.length, chart: u });
    return u;
  }

  function secondsAxis(label) {
    return { label: label, size: 72, values: function (u, v) { return v.map(function (x) { return fmtMs(x); }); } };
  }

  function fmtMs(x) {
    if (x === null || x === undefined) return "";
    if (x >= 1000) return (x / 1000).toPrecision(3) + " s";
    if (x >= 1) return x.toPrecision(3) + " ms";
    return (x * 1000).toPrecision(3) + " µs";
  }

  function histogram(runId, kind, container, title, dist) {
    var h = dist.hist;
    var x = ms(h.edges);
    var y = h.counts.concat([h.counts[h.counts.length - 1]]);
    plot(runId, kind, container, title, h.log ? "log-scaled time axis" : "", {
      scales: { x: { time: false, distr: h.log ? 3 : 1 } },
      axes: [secondsAxis("latency"), { label: "calls" }],
      series: [
        { label: "latency", value: function (u, v) { return fmtMs(v); } },
        { label: "calls", stroke: COLORS.ok, fill: "rgba(9,105,218,0.25)",
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
      ],
    }, [x, y]);
  }

  function cdfChart(runId, kind, container, title, dist) {
    var c = dist.cdf;
    plot(runId, kind, container, title, dist.hist.log ? "log-scaled time axis" : "", {
      scales: { x: { time: false, distr: dist.hist.log ? 3 : 1 }, y: { range: [0, 1] } },
      axes: [secondsAxis("latency"), { label: "share of calls" }],
      series: [
        { label: "latency", value: function (u, v) { return fmtMs(v); } },
        { label: "share", stroke: COLORS.ok, paths: uPlot.paths.stepped({ align: 1 }),
          points: { show: false } },
      ],
    }, [ms(c.x), c.p]);
  }

  function points(label, color, size) {
    return { label: label, stroke: color, fill: color, paths: function () { return null; },
      points: { show: true, size: size, fill: color, stroke: color } };
  }

  // Stages (stages=) as shaded bands behind a chart whose x axis is seconds into the run.
  function stageBands(stages) {
    if (!stages || !stages.length) return {};
    return { drawClear: [function (u) {
      var ctx = u.ctx;
      ctx.save();
      stages.forEach(function (st, i) {
        var x0 = u.valToPos(st.start, "x", true), x1 = u.valToPos(st.end, "x", true);
        ctx.fillStyle = i % 2 ? "rgba(130,80,223,0.10)" : "rgba(130,80,223,0.04)";
        ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
      });
      ctx.restore();
    }] };
  }

  function timeline(runId, container, calls, stages) {
    var lat = ms(calls.latency);
    var bySt = [[], [], []];
    for (var i = 0; i < lat.length; i++) {
      for (var s = 0; s < 3; s++) bySt[s].push(calls.status[i] === s ? lat[i] : null);
    }
    var note = calls.cut ? "showing " + calls.shown + " of " + calls.n +
      " calls: every failed call and an even sample of the others" : "";
    plot(runId, "latency-time", container, "Latency of each call by start time", note, {
      hooks: stageBands(stages),
      scales: { x: { time: false } },
      axes: [{ label: "start (s into the run)" }, secondsAxis("latency")],
      series: [
        { label: "start", value: function (u, v) { return v === null ? "" : v.toFixed(3) + " s"; } },
        points("ok", COLORS.ok, 3),
        points("error", COLORS.error, 6),
        points("timeout", COLORS.timeout, 7),
      ],
    }, [calls.start, bySt[0], bySt[1], bySt[2]]);
  }

  function windows(runId, container, w, stages) {
    var note = w.source === "calls" ? "windows of " + (w.mid.length > 1 ? (w.mid[1] - w.mid[0]).toPrecision(2) : "?") +
      " s counted from the calls' end times" : "";
    if (stages && stages.length) note += (note ? "; " : "") + "shaded bands: the " + stages.length + " stages";
    plot(runId, "windows", container, "Throughput and errors per time window", note, {
      hooks: stageBands(stages),
      scales: { x: { time: false }, err: {} },
      axes: [{ label: "time (s into the run)" }, { label: "calls/s" },
        { scale: "err", side: 1, label: "errors", grid: { show: false } }],
      series: [
        { label: "time" },
        { label: "throughput", stroke: COLORS.ok, width: 2 },
        { label: "errors", stroke: COLORS.error, scale: "err", width: 2 },
      ],
    }, [w.mid, w.throughput, w.errors]);
    if (w.rss_mb) {
      plot(runId, "rss", container, "RSS of the test process over the run", "", {
        scales: { x: { time: false } },
        axes: [{ label: "time (s into the run)" }, { label: "MB" }],
        series: [{ label: "time" }, { label: "RSS MB", stroke: COLORS.second, width: 2 }],
      }, [w.rss_mid, w.rss_mb]);
    }
  }

  // A capacity search: p50/p95/p99 against the offered rate, the SLO's latency limit as a
  // flat line and the knee (the highest rate that held) as a vertical line.
  function capacityChart(runId, container, c) {
    var series = [
      { label: "offered rate", value: function (u, v) { return v === null ? "" : v.toPrecision(3) + "/s"; } },
      { label: "p50", stroke: COLORS.ok, width: 2 },
      { label: "p95", stroke: COLORS.second, width: 2 },
      { label: "p99", stroke: COLORS.timeout, width: 2 },
    ];
    var values = [c.rate, ms(c.p50), ms(c.p95), ms(c.p99)];
    c.slo.forEach(function (s) {
      series.push({ label: "SLO " + s.name, stroke: COLORS.error, dash: [6, 4], width: 1.5, points: { show: false } });
      values.push(c.rate.map(function () { return s.limit * 1000; }));
    });
    var knee = c.knee;
    plot(runId, "capacity", container, "Latency against offered load (capacity search)",
      knee === null ? "no rate held the SLO" : "knee: " + knee.toPrecision(3) + "/s, the highest rate that held", {
        hooks: { draw: [function (u) {
          if (knee === null) return;
          var x = u.valToPos(knee, "x", true), ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = COLORS.error;
          ctx.setLineDash([2, 3]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }] },
        scales: { x: { time: false } },
        axes: [{ label: "offered rate (calls/s)" }, secondsAxis("latency")],
        series: series,
      }, values);
  }

  function ttftTimeline(runId, container, calls) {
    plot(runId, "ttft-time", container, "Time to first token by start time", "", {
      scales: { x: { time: false } },
      axes: [{ label: "start (s into the run)" }, secondsAxis("TTFT")],
      series: [{ label: "start" }, points("TTFT", COLORS.second, 3)],
    }, [calls.start, ms(calls.ttft)]);
  }

  function tokens(runId, container, calls) {
    var known = calls.input_tokens.some(function (v) { return v !== null; });
    if (known) {
      plot(runId, "tokens", container, "Tokens of each call by start time", "", {
        scales: { x: { time: false } },
        axes: [{ label: "start (s into the run)" }, { label: "tokens" }],
        series: [{ label: "start" }, points("input", COLORS.ok, 3), points("output", COLORS.second, 3)],
      }, [calls.start, calls.input_tokens, calls.output_tokens]);
    }
    if (calls.cost.some(function (v) { return v !== null; })) {
      plot(runId, "cost", container, "Cost of each call by start time", "", {
        scales: { x: { time: false } },
        axes: [{ label: "start (s into the run)" }, { label: "USD", size: 80,
          values: function (u, v) { return v.map(function (x) { return x === null ? "" : "$" + x.toPrecision(3); }); } }],
        series: [{ label: "start" }, points("cost $", COLORS.timeout, 3)],
      }, [calls.start, calls.cost]);
    }
  }

  function drawRun(run) {
    var container = document.querySelector('.charts[data-run="' + run.id + '"]');
    if (!container) return;
    var steps = [
      function () { if (run.latency) histogram(run.id, "latency-hist", container, "Latency histogram (successful calls)", run.latency); },
      function () { if (run.latency) cdfChart(run.id, "latency-cdf", container, "Latency CDF (successful calls)", run.latency); },
      function () { if (run.calls) timeline(run.id, container, run.calls, run.stages); },
      function () { if (run.windows) windows(run.id, container, run.windows, run.stages); },
      function () { if (run.capacity) capacityChart(run.id, container, run.capacity); },
      function () { if (run.ttft) histogram(run.id, "ttft-hist", container, "Time to first token", run.ttft); },
      function () { if (run.ttft && run.calls) ttftTimeline(run.id, container, run.calls); },
      function () { if (run.itl) histogram(run.id, "itl-hist", container, "Gaps between streamed chunks", run.itl); },
      function () { if (run.calls) tokens(run.id, container, run.calls); },
    ];
    steps.forEach(function (step) {
      try { step(); } catch (e) { console.error("agentperf chart of " + run.id + ": " + e); }
    });
  }

  data.runs.forEach(drawRun);
})();
