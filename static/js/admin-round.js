/* prefloop console, one training round: polls GET /api/v1/rounds/{id}, GET /admin/rounds/{id}/live and
   GET /api/v1/rounds/{id}/metrics?since=<next_since> while the round is queued or running, and keeps
   the stages, the progress bar, facts, results, gates, the activation card, the log tail and the metric
   charts current. When the round finishes, the page reloads once to show its results as the server
   renders them. While its new policy's human-gated rollout runs, the page keeps polling: the activation
   card shows the rollout's judgments and verdict as they come. */
(function () {
  "use strict";
  const C = window.PrefloopCharts;
  const root = document.getElementById("round");
  const id = root.dataset.roundId;
  const LIVE = new Set(["queued", "running"]);
  const PAGE = 5000;  // the metrics endpoint's largest page
  const charts = JSON.parse(document.getElementById("chart-spec").textContent).map(spec => ({
    spec, el: document.getElementById("chart-" + spec.id), plot: null,
  }));
  const byStage = new Map();  // stage -> points [{step, values}] in step order
  let since = 0;

  function addPoint(point) {
    const points = byStage.get(point.stage) || [];
    // A repeated step rewinds the stage: a trainer resumed from a checkpoint logs those steps again.
    while (points.length && points[points.length - 1].step >= point.step) points.pop();
    points.push(point);
    byStage.set(point.stage, points);
  }

  function drawCharts() {
    for (const chart of charts) {
      const points = (byStage.get(chart.spec.stage) || [])
        .filter(p => chart.spec.series.some(s => typeof p.values[s.key] === "number"));
      if (!points.length) {
        if (!chart.el.firstChild) {
          const empty = document.createElement("p");
          empty.className = "empty";
          empty.textContent = "No points yet";
          chart.el.append(empty);
        }
        continue;
      }
      // Only series with points get a line and a legend entry (the validation loss exists only when
      // the reward model stops early); the plot is rebuilt when another series gets its first point.
      const drawn = chart.spec.series.filter(s => points.some(p => typeof p.values[s.key] === "number"));
      const key = drawn.map(s => s.key).join("|");
      if (!chart.plot || chart.drawnKey !== key) {
        chart.el.replaceChildren();
        chart.plot = C.stepLines(chart.el, drawn);
        chart.drawnKey = key;
      }
      chart.plot.update(points.map(p => [p.step, p.values]));
    }
  }

  const pct = x => (typeof x === "number" ? Math.round(x * 100) + "%" : "—");

  function renderNotes(r) {
    for (const { spec } of charts) {
      const note = spec.note && document.querySelector(`[data-note="${spec.id}"]`);
      if (!note) continue;
      const value = (r.results[spec.stage] || {})[spec.note.result];
      const gate = (r.config.gates || {})[spec.note.gate];
      note.textContent = typeof value === "number"
        ? `${spec.note.label} ${pct(value)} · gate ≥ ${pct(gate)}` : `gate ≥ ${pct(gate)}`;
    }
  }

  /* The stages, facts, results, gates and log come rendered by the server (GET /admin/rounds/{id}/live,
     the same template as the page), so the page and its refresh cannot disagree. */
  async function fetchLive() {
    try {
      const response = await fetch(`/admin/rounds/${id}/live`, { credentials: "same-origin" });
      if (!response.ok) return null;
      return new DOMParser().parseFromString(await response.text(), "text/html");
    } catch (error) {
      return null;
    }
  }

  function swapLive(fresh) {
    const log = document.getElementById("round-log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    fresh.querySelectorAll("[data-live]").forEach(block => {
      const old = document.querySelector(`[data-live="${block.dataset.live}"]`);
      // An unchanged block stays as it is, so a button in it (the rollout's Stop) keeps focus and clicks.
      if (old && old.outerHTML !== block.outerHTML) old.replaceWith(document.adoptNode(block));
    });
    document.querySelectorAll("[data-live] .bar[aria-valuenow]").forEach(bar => {
      C.setBar(bar, Number(bar.getAttribute("aria-valuenow")) / 100);
    });
    const newLog = document.getElementById("round-log");
    if (atBottom) newLog.scrollTop = newLog.scrollHeight;
  }

  function renderRound(r) {
    document.getElementById("round-status").replaceChildren(C.pill(r.status));
    renderNotes(r);
  }

  async function fetchMetrics() {
    let page;
    do {
      page = await C.getJSON(`/api/v1/rounds/${id}/metrics?since=${since}&limit=${PAGE}`);
      if (!page) return;
      page.items.forEach(addPoint);
      since = page.next_since;
    } while (page.items.length === PAGE);
  }

  const rolloutRunning = () => document.querySelector('[data-live="activation"]')?.dataset.rollout === "running";

  async function tick() {
    const [round, fresh] = await Promise.all([C.getJSON(`/api/v1/rounds/${id}`), fetchLive(), fetchMetrics()]);
    drawCharts();
    if (fresh) swapLive(fresh);
    if (!round) return true;
    renderRound(round);
    if (LIVE.has(round.status)) return true;
    if (LIVE.has(root.dataset.status)) location.reload();  // finished while we watched: show its results
    return rolloutRunning();
  }

  tick().then(more => { if (more) C.poll(Number(root.dataset.pollMs), tick); });
})();
