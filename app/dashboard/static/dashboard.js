// Draws every chart a page embeds: <div data-chart="ID"> + <script type="application/json" id="ID">.
// The JSON is {"title", "x_label", "x": [...], "series": {name: [...]}, "bounds"?: {name: line}}
// (app/dashboard/charts.py); a bound of an interval around ``line`` is drawn thin, dashed and in
// that line's colour.
(function () {
  "use strict";
  var COLOURS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285"];

  function draw(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    var source = document.getElementById(el.dataset.chart);
    if (!source) return;
    var chart = JSON.parse(source.textContent);
    var names = Object.keys(chart.series);
    var bounds = chart.bounds || {};
    var lines = names.filter(function (name) { return !(name in bounds); });
    var series = [{ label: chart.x_label }].concat(names.map(function (name) {
      var colour = COLOURS[Math.max(0, lines.indexOf(bounds[name] || name)) % COLOURS.length];
      if (name in bounds) return { label: name, stroke: colour, width: 1, dash: [6, 4] };
      return { label: name, stroke: colour, width: 2, points: { show: true } };
    }));
    var data = [chart.x].concat(names.map(function (name) { return chart.series[name]; }));
    var width = Math.max(320, Math.min(el.clientWidth || 720, 960));
    new uPlot({ width: width, height: 260, series: series, scales: { x: { time: false } },
                axes: [{ label: chart.x_label }, {}] }, data, el);
    el.dataset.drawn = "1";
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  // A polled list is replaced every few seconds: keep the <details> the operator opened open.
  var opened = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    opened = Array.prototype.map.call(
      event.target.querySelectorAll("details[open][id]"), function (d) { return d.id; });
  });
  document.addEventListener("htmx:afterSwap", function () {
    opened.forEach(function (id) {
      var again = document.getElementById(id);
      if (again) again.open = true;
    });
  });

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();
