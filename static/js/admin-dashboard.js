/* prefloop console dashboard: draws judgments per hour and keeps the numbers live from
   GET /api/v1/stats/progress (the same service the page was rendered from). */
(function () {
  "use strict";
  const C = window.PrefloopCharts;
  const root = document.getElementById("dashboard");
  const progress = JSON.parse(document.getElementById("progress-data").textContent);

  const hours = p => p.judgments_per_hour.map(h => Date.parse(h.start) / 1000);
  const counts = p => p.judgments_per_hour.map(h => h.judgments);
  const chart = C.hourlyBars(document.getElementById("hourly-chart"), hours(progress), counts(progress));

  const card = document.getElementById("current-round");

  function renderRound(round) {
    const body = card.querySelector("[data-round-body]");
    body.replaceChildren();
    if (!round) {
      const p = document.createElement("p");
      p.className = "muted";
      p.append("No round in progress. ");
      const a = document.createElement("a");
      a.href = "/admin/rounds";
      a.textContent = "Launch one";
      p.append(a, ".");
      body.append(p);
      return;
    }
    const line = document.createElement("p");
    line.className = "round-line";
    const link = document.createElement("a");
    link.href = "/admin/rounds/" + round.id;
    link.textContent = "Round #" + round.id;
    const stage = document.createElement("span");
    stage.className = "muted";
    stage.textContent = round.stage ? round.stage.replace(/_/g, " ") : "waiting for a worker";
    line.append(link, " ", C.pill(round.status), " ", stage);
    const stages = document.createElement("ol");
    stages.className = "stages mini";
    for (const name of JSON.parse(card.dataset.stages)) {
      const li = document.createElement("li");
      li.className = round.completed_stages.includes(name) ? "done" : name === round.stage ? "current" : "";
      li.textContent = name.replace(/_/g, " ");
      stages.append(li);
    }
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "progressbar");
    bar.append(document.createElement("span"));
    C.setBar(bar, round.fraction);
    const steps = document.createElement("p");
    steps.className = "muted small num";
    steps.textContent = "step " + round.step + " / " + round.total_steps;
    body.append(line, stages, bar, steps);
  }

  function render(p) {
    root.querySelectorAll("[data-stat]").forEach(el => {
      const key = el.dataset.stat;
      el.textContent = key === "active_policy" ? (p.active_policy ? "v" + p.active_policy.number : "—") : p[key];
    });
    const at = document.getElementById("generated-at");
    at.textContent = p.generated_at.slice(11, 19) + " UTC";
    at.setAttribute("datetime", p.generated_at);
    chart.update(hours(p), counts(p));
    renderRound(p.current_round);
  }

  C.poll(Number(root.dataset.pollMs), async () => {
    const fresh = await C.getJSON("/api/v1/stats/progress");
    if (fresh) render(fresh);
  });
})();
