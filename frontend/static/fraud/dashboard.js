/* The fraud dashboard: draws a snapshot of the figures (fraud.dashboard) with Chart.js and
   redraws from /fraud/dashboard/data when the flags websocket announces new flags (at most once
   a second), every 10 seconds, and after a reconnect (so nothing missed while offline stays
   missing). Times are shown in the viewer's own time zone. */
(function () {
  "use strict";

  const holder = document.getElementById("dashboard");
  const indicator = document.getElementById("live-indicator");
  const REFRESH_MS = 10000;
  const DEBOUNCE_MS = 1000;
  const BASE_DELAY_MS = 500;
  const MAX_DELAY_MS = 10000;
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const stamp = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const COLORS = { approve: "#2e8b57", review: "#d68a00", decline: "#c0392b", line: "#0b6b4f", p99: "#c0392b" };
  const charts = {};
  let lastFlagId = 0;
  let attempt = 0;
  let pending = null;

  function minuteLabels(data) {
    return data.minutes.map(function (m) { return clock.format(new Date(m)); });
  }

  function chart(id, config) {
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
      return;
    }
    config.options = Object.assign({ responsive: true, animation: false, maintainAspectRatio: false }, config.options || {});
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function last(values) {
    for (let i = values.length - 1; i >= 0; i -= 1) if (values[i]) return values[i];
    return 0;
  }

  function draw(data) {
    lastFlagId = Math.max(lastFlagId, data.last_flag_id);
    document.getElementById("updated-at").textContent = stamp.format(new Date(data.at));
    const labels = minuteLabels(data);
    const total = data.payments.reduce(function (a, b) { return a + b; }, 0);
    const flagged = data.decisions.review.concat(data.decisions.decline).reduce(function (a, b) { return a + b; }, 0);
    document.getElementById("tile-rate").textContent = String(last(data.payments));
    document.getElementById("tile-flagged").textContent = total ? percent.format(flagged / total) : "–";
    document.getElementById("tile-queue").textContent = String(data.queue_open);
    document.getElementById("tile-oldest").textContent = data.oldest_open_minutes === null ? "" :
      " oldest " + (data.oldest_open_minutes < 90 ? Math.round(data.oldest_open_minutes) + " min" : Math.round(data.oldest_open_minutes / 60) + " h");
    document.getElementById("tile-precision").textContent = data.review_precision === null ? "–" : percent.format(data.review_precision);
    chart("chart-volume", {
      type: "bar",
      data: { labels: labels, datasets: [
        { label: "payments", data: data.payments, backgroundColor: "#9cc9b5", yAxisID: "y" },
        { label: "flagged share", type: "line", data: data.flagged_share, borderColor: COLORS.decline, yAxisID: "share", pointRadius: 2, spanGaps: true }
      ] },
      options: { scales: { share: { position: "right", min: 0, ticks: { callback: function (v) { return percent.format(v); } } } } }
    });
    chart("chart-decisions", {
      type: "bar",
      data: { labels: labels, datasets: ["approve", "review", "decline"].map(function (d) {
        return { label: d, data: data.decisions[d], backgroundColor: COLORS[d] };
      }) },
      options: { scales: { x: { stacked: true }, y: { stacked: true } } }
    });
    chart("chart-latency", {
      type: "line",
      data: { labels: labels, datasets: [
        { label: "p50", data: data.latency_p50, borderColor: COLORS.line, pointRadius: 2, spanGaps: true },
        { label: "p99", data: data.latency_p99, borderColor: COLORS.p99, pointRadius: 2, spanGaps: true }
      ] }
    });
    chart("chart-scores", {
      type: "bar",
      data: { labels: data.score_bins.map(function (_, i) { return (i / data.score_bins.length).toFixed(2); }),
        datasets: [{ label: "payments", data: data.score_bins, backgroundColor: "#7a8fb8" }] },
      options: { scales: { y: { type: "logarithmic" } } }
    });
    chart("chart-queue", {
      type: "bar",
      data: { labels: Object.keys(data.queue_ages), datasets: [{ label: "open reviews", data: Object.values(data.queue_ages), backgroundColor: COLORS.review }] }
    });
    document.getElementById("outcomes-empty").hidden = Object.keys(data.outcomes).length > 0;
    document.getElementById("precision-empty").hidden = data.precision_at_k.some(function (v) { return v !== null; });
    chart("chart-outcomes", {
      type: "doughnut",
      data: { labels: Object.keys(data.outcomes).map(function (o) { return o.replace(/_/g, " "); }),
        datasets: [{ data: Object.values(data.outcomes), backgroundColor: ["#2e8b57", "#7a8fb8", "#d68a00", "#c0392b"] }] }
    });
    chart("chart-precision", {
      type: "line",
      data: { labels: data.precision_days.map(function (d) { return new Date(d + "T12:00:00Z").toLocaleDateString(); }),
        datasets: [{ label: "Card Precision@k", data: data.precision_at_k, borderColor: COLORS.line, spanGaps: false }] },
      options: { scales: { y: { min: 0, max: 1, ticks: { callback: function (v) { return percent.format(v); } } } } }
    });
    holder.dataset.drawn = String(Number(holder.dataset.drawn || 0) + 1);
  }

  function refresh() {
    pending = null;
    fetch(holder.dataset.dataUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data) draw(data); })
      .catch(function () { /* offline: the next refresh or reconnect catches up */ });
  }

  function soon() {
    if (pending === null) pending = window.setTimeout(refresh, DEBOUNCE_MS);
  }

  function show(state, text) {
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + holder.dataset.socketPath + "?after=" + lastFlagId);
    socket.addEventListener("open", function () {
      // A reconnect may have missed anything: redraw from the server's figures.
      if (attempt > 0) refresh();
      attempt = 0;
    });
    socket.addEventListener("message", function (event) {
      const message = JSON.parse(event.data);
      if (message.type !== "fraud.flags") return;
      if (message.flags.length) soon();
      // The first message is the server's catch-up (perhaps empty): from here on it pushes.
      show("live", "Live");
    });
    socket.addEventListener("close", function () {
      const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      show("offline", "Reconnecting…");
      window.setTimeout(connect, delay);
    });
  }

  draw(JSON.parse(document.getElementById("dashboard-initial").textContent));
  window.setInterval(refresh, REFRESH_MS);
  connect();
})();
