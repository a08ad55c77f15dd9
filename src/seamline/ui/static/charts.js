// Draws the page's charts with uPlot from the JSON the page carries (the same figures are
// in the tables beside them: without JavaScript nothing is lost).
(function () {
  "use strict";
  var colours = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];
  function draw(element) {
    var data = JSON.parse(document.getElementById(element.dataset.chart).textContent);
    var names = element.dataset.series.split(",");
    var labels = (element.dataset.labels || element.dataset.series).split(",");
    var series = [{}];
    var columns = [data.x];
    names.forEach(function (name, i) {
      series.push({ label: labels[i], stroke: colours[i % colours.length], width: 2, spanGaps: true });
      columns.push(data[name]);
    });
    var width = Math.max(280, element.clientWidth || 480);
    var options = {
      width: width, height: 200, series: series, axes: [{}, { size: 60 }],
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }  // as the tables
    };
    new uPlot(options, columns, element);
  }
  document.querySelectorAll("[data-chart]").forEach(draw);
})();
