// Draws every chart a page embeds: <div data-chart="ID"> + <script type="application/json" id="ID">.
// The JSON is {"title", "x_label", "y_label", "x": [...], "series": {name: [...]},
// "x_integer"?: true, "bounds"?: {name: line}} (app/dashboard/charts.py); a bound of an interval
// around ``line`` is drawn thin, dashed and in that line's colour. Both axes are labelled (the
// labels carry the unit); x ticks are whole numbers where x counts (epochs); the y range always
// reaches 0, so a flat or nearly flat series is drawn flat instead of stretched into a slope.
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
    var xAxis = { label: chart.x_label };
    if (chart.x_integer) xAxis.incrs = WHOLE;
    var yAxis = { label: chart.y_label || "", size: fitTicks, values: ticks };
    new uPlot({ width: width, height: 260, series: series,
                scales: { x: { time: false }, y: { range: fromZero } },
                axes: [xAxis, yAxis] }, data, el);
    el.dataset.drawn = "1";
  }

  var WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

  // The y range: the data's, stretched to reach 0 (a rate, a loss, a difference with 0 all
  // read against 0); [0, 1] when there is nothing but zeros (or nothing) to draw.
  function fromZero(u, min, max) {
    if (min == null || max == null) return [0, 1];
    var low = Math.min(0, min), high = Math.max(0, max);
    if (low === high) return [0, 1];
    return uPlot.rangeNum(low, high, 0.1, true);
  }

  // Tick labels with the digits the ticks need: uPlot's own printed 2.5e-6 and 5e-6 as "0".
  function ticks(u, splits) {
    return splits.map(function (v) { return v == null ? "" : String(+v.toPrecision(6)); });
  }

  // The y axis as wide as its widest tick label (uPlot's fixed 50 px cut "10,000" to "0,000").
  function fitTicks(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (a, v) {
      return String(v).length > a.length ? String(v) : a;
    }, "");
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
    }
    return Math.ceil(size);
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
