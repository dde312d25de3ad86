/* The drift page's chart: the PSI of the score and of the inputs that moved most, per hour,
   and the drift trigger's threshold as a dashed line; hours in the viewer's own time zone. */
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("drift-data").textContent);
  const canvas = document.getElementById("chart-drift");
  if (!canvas || !data.periods.length) return;
  const label = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const COLORS = ["#0b6b4f", "#2c5d8a", "#d68a00", "#7b4fa0", "#5b5b5b", "#2e8b57"];
  const datasets = Object.keys(data.series).map(function (name, i) {
    return { label: name, data: data.series[name], borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length], spanGaps: true, pointRadius: 3 };
  });
  datasets.push({ label: "trigger threshold", data: data.periods.map(function () { return data.threshold; }), borderColor: "#c0392b", borderDash: [6, 4], pointRadius: 0 });
  new Chart(canvas, {
    type: "line",
    data: { labels: data.periods.map(function (p) { return label.format(new Date(p)); }), datasets: datasets },
    options: { responsive: true, animation: false, maintainAspectRatio: false, scales: { y: { min: 0 } } }
  });
})();
