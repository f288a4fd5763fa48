/* prefloop console: small helpers around the vendored uPlot (static/vendor/uplot) and the live polling. */
(function () {
  "use strict";

  const PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#1098ad", "#c92a2a"];
  const AXIS = { stroke: "#667085", grid: { stroke: "#eef0f4", width: 1 }, ticks: { stroke: "#e3e6ec", width: 1 },
                 font: "11px system-ui, sans-serif" };

  function width(el) { return Math.max(240, Math.floor(el.clientWidth)); }

  /* Keep a chart as wide as its container. */
  function fit(el, plot, height) {
    new ResizeObserver(() => plot.setSize({ width: width(el), height })).observe(el);
  }

  /* A bar chart of counts per hour; x values are Unix seconds, labelled in UTC like the rest of the
     console. Returns {update(xs, ys)}. */
  function hourlyBars(el, xs, ys, { height = 180, label = "judgments" } = {}) {
    const plot = new uPlot({
      width: width(el), height, legend: { show: false }, cursor: { points: { show: false } },
      tzDate: ts => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(4, max * 1.15)] } },
      axes: [{ ...AXIS, values: "{HH}:00", space: 50 }, { ...AXIS, size: 40 }],
      series: [{}, { label, fill: "rgba(59, 91, 219, .75)", stroke: PALETTE[0], width: 0,
                     paths: uPlot.paths.bars({ size: [0.75, 40] }), points: { show: false } }],
    }, [xs, ys], el);
    fit(el, plot, height);
    return { update(x, y) { plot.setData([x, y]); } };
  }

  /* A line chart over steps with one or more named series. Returns {update(points)} where points
     is [[step, {seriesKey: value}], ...] sorted by step. Missing values leave gaps. */
  function stepLines(el, series, { height = 200, yLabel = "" } = {}) {
    const plot = new uPlot({
      width: width(el), height,
      legend: { show: series.length > 1, live: false },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false } },
      axes: [{ ...AXIS, label: "step", labelSize: 18, labelFont: "11px system-ui, sans-serif" },
             { ...AXIS, size: 52, label: yLabel, labelSize: yLabel ? 18 : 0, labelFont: "11px system-ui, sans-serif" }],
      series: [{ label: "step" }].concat(series.map((s, i) => ({
        label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: 1.75, spanGaps: true,
        points: { size: 4 },
      }))),
    }, [[], ...series.map(() => [])], el);
    fit(el, plot, height);
    return {
      update(points) {
        const xs = points.map(p => p[0]);
        plot.setData([xs, ...series.map(s => points.map(p => {
          const v = p[1][s.key];
          return typeof v === "number" && isFinite(v) ? v : null;
        }))]);
      },
    };
  }

  /* Rating by version: the Bradley-Terry rating with its 95% interval as a shaded band.
     points: [{version, rating, low, high}] sorted by version. */
  function ratingByVersion(el, points, { height = 220 } = {}) {
    const xs = points.map(p => p.version);
    const band = { stroke: "rgba(59, 91, 219, .35)", width: 1, dash: [4, 4], points: { show: false } };
    const plot = new uPlot({
      width: width(el), height, legend: { show: false },
      scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] } },
      axes: [{ ...AXIS, label: "version", labelSize: 18, labelFont: "11px system-ui, sans-serif",
               incrs: [1], values: (u, ticks) => ticks.map(t => "v" + t) },
             { ...AXIS, size: 52, label: "rating", labelSize: 18, labelFont: "11px system-ui, sans-serif" }],
      series: [{ label: "version" }, { label: "low", ...band }, { label: "high", ...band },
               { label: "rating", stroke: PALETTE[0], width: 2, points: { size: 7, fill: PALETTE[0] } }],
      bands: [{ series: [2, 1], fill: "rgba(59, 91, 219, .12)" }],
    }, [xs, points.map(p => p.low), points.map(p => p.high), points.map(p => p.rating)], el);
    fit(el, plot, height);
    return plot;
  }

  /* Figures by version, one line per series: points [{version, <key>: value or null}] sorted by version,
     series [{key, label}]; percent: values are shares in 0..1, labelled in %. */
  function versionLines(el, points, series, { height = 220, percent = false } = {}) {
    const xs = points.map(p => p.version);
    const label = v => (percent ? Math.round(v * 100) + "%" : String(Math.round(v * 10) / 10));
    const plot = new uPlot({
      width: width(el), height, legend: { show: series.length > 1, live: false },
      scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
                y: percent ? { range: (u, min, max) => [0, Math.max(1, max)] } : {} },
      axes: [{ ...AXIS, label: "version", labelSize: 18, labelFont: "11px system-ui, sans-serif",
               incrs: [1], values: (u, ticks) => ticks.map(t => "v" + t) },
             { ...AXIS, size: 52, values: (u, ticks) => ticks.map(label) }],
      series: [{ label: "version" }].concat(series.map((s, i) => ({
        label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
        points: { size: 6, fill: PALETTE[i % PALETTE.length] },
      }))),
    }, [xs, ...series.map(s => points.map(p => (typeof p[s.key] === "number" ? p[s.key] : null)))], el);
    fit(el, plot, height);
    return plot;
  }

  /* Fetch JSON with the session cookie; resolves to null on any failure so a poller keeps going. */
  async function getJSON(url) {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      return response.ok ? await response.json() : null;
    } catch (e) {
      return null;
    }
  }

  /* Call `tick` every `ms` until it returns false; waits while the tab is hidden. */
  function poll(ms, tick) {
    let timer = null, running = false, stopped = false;
    async function run() {
      timer = null;
      if (stopped || running || document.hidden) return;
      running = true;
      stopped = (await tick()) === false;
      running = false;
      if (!stopped) timer = setTimeout(run, ms);
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden && timer === null) run(); });
    timer = setTimeout(run, ms);
  }

  function pill(status) {
    const span = document.createElement("span");
    span.className = "pill pill-" + status;
    span.textContent = status.replace(/_/g, " ");
    return span;
  }

  function setBar(bar, fraction) {
    const percent = Math.max(0, Math.min(1, fraction || 0)) * 100;
    bar.setAttribute("aria-valuenow", Math.round(percent));
    bar.firstElementChild.style.width = percent.toFixed(1) + "%";
  }

  window.PrefloopCharts = { hourlyBars, stepLines, ratingByVersion, versionLines, getJSON, poll, pill, setBar };
})();
