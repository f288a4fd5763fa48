// Progress bars rendered by the server carry their value in aria-valuenow (percent); their fill's width
// is set here because the Content-Security-Policy blocks inline style attributes. Live pages update the
// bars later through PrefloopCharts.setBar.
document.querySelectorAll(".bar[aria-valuenow] > span").forEach(fill => {
  fill.style.width = fill.parentElement.getAttribute("aria-valuenow") + "%";
});
