// The policies page: the rating-by-version and side-effects-by-version charts, drawn from the page's JSON blocks.
(function () {
  "use strict";
  const C = window.PrefloopCharts;
  const data = document.getElementById("rating-data");
  if (data) C.ratingByVersion(document.getElementById("rating-chart"), JSON.parse(data.textContent));
  const sideEffects = document.getElementById("side-effect-data");
  if (sideEffects) {
    const { points, charts } = JSON.parse(sideEffects.textContent);
    for (const chart of charts) {
      C.versionLines(document.getElementById("chart-" + chart.id), points, chart.series, { percent: chart.percent });
    }
  }
})();
