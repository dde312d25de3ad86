/* The performance page's charts: one line per model over the periods, drawn from the figures
   the page carries (ml.performance); times in the viewer's own time zone. */
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("performance-data").textContent);
  if (!data.rows.length) return;
  const hourly = data.period === "h";
  const label = new Intl.DateTimeFormat(undefined, hourly ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short" });
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const COLORS = ["#0b6b4f", "#c0392b", "#d68a00", "#2c5d8a", "#7b4fa0", "#5b5b5b"];
  const periods = Array.from(new Set(data.rows.map(function (r) { return r.period; }))).sort();
  const models = Array.from(new Set(data.rows.map(function (r) { return r.model; })));

  // Times in the table, in the viewer's words.
  document.querySelectorAll("time.period").forEach(function (node) {
    node.textContent = label.format(new Date(node.getAttribute("datetime")));
  });

  function series(field) {
    return models.map(function (model, i) {
      const byPeriod = {};
      data.rows.forEach(function (r) { if (r.model === model) byPeriod[r.period] = r[field]; });
      return {
        label: model.slice(-8),
        data: periods.map(function (p) { return byPeriod[p] === undefined ? null : byPeriod[p]; }),
        borderColor: COLORS[i % COLORS.length],
        backgroundColor: COLORS[i % COLORS.length],
        spanGaps: true,
        pointRadius: 3
      };
    });
  }

  function draw(id, field, share) {
    const ticks = share ? { callback: function (v) { return percent.format(v); } } : {};
    new Chart(document.getElementById(id), {
      type: "line",
      data: { labels: periods.map(function (p) { return label.format(new Date(p)); }), datasets: series(field) },
      options: { responsive: true, animation: false, maintainAspectRatio: false,
        scales: { y: { min: 0, suggestedMax: share ? 1 : undefined, ticks: ticks } } }
    });
  }

  draw("chart-ap", "average_precision", true);
  draw("chart-recall", "recall", true);
  draw("chart-flagged", "flagged_share", true);
  draw("chart-load", "review_minutes", false);
})();
