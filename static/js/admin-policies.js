// The policies page: the rating-by-version chart, drawn from the page's JSON block.
(function () {
  "use strict";
  const data = document.getElementById("rating-data");
  if (data) window.PrefloopCharts.ratingByVersion(document.getElementById("rating-chart"), JSON.parse(data.textContent));
})();
