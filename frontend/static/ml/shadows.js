/* The models page's shadow chart: per hour, the share of payments each shadow decided as the
   champion did; hours in the viewer's own time zone. */
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("shadows-data").textContent);
  const versions = Object.keys(data);
  if (!versions.length) return;
  const label = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const COLORS = ["#0b6b4f", "#2c5d8a", "#d68a00", "#7b4fa0"];
  const periods = Array.from(new Set(versions.flatMap(function (v) { return data[v].map(function (r) { return r.period; }); }))).sort();
  const datasets = versions.map(function (version, i) {
    const byPeriod = {};
    data[version].forEach(function (r) { byPeriod[r.period] = r.agreement; });
    return {
      label: version.slice(-8) + ": same decision",
      data: periods.map(function (p) { return byPeriod[p] === undefined ? null : byPeriod[p]; }),
      borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length], spanGaps: true, pointRadius: 3
    };
  });
  new Chart(document.getElementById("chart-shadows"), {
    type: "line",
    data: { labels: periods.map(function (p) { return label.format(new Date(p)); }), datasets: datasets },
    options: { responsive: true, animation: false, maintainAspectRatio: false,
      scales: { y: { min: 0, max: 1, ticks: { callback: function (v) { return percent.format(v); } } } } }
  });
})();
