/* The trip page: the route on the city map, and the live status over a websocket that
   reconnects with backoff. On every (re)connect the server sends the trip's current state from
   the database, so whatever changed while the socket was down shows up at once. */
(function () {
  "use strict";

  const panel = document.getElementById("trip-live");
  const indicator = document.getElementById("live-indicator");
  const cancelPanel = document.getElementById("cancel-panel");
  const BASE_DELAY_MS = 500;
  const MAX_DELAY_MS = 10000;

  let attempt = 0;
  let final = panel.dataset.final === "true";

  function show(state, text) {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  function apply(message) {
    if (message.status !== panel.dataset.status) {
      // A confirmation shown for the old status may no longer hold (fee, or no cancel at all).
      cancelPanel.innerHTML = "";
    }
    panel.innerHTML = message.html;
    panel.dataset.status = message.status;
    htmx.process(panel);
    if (message.final) {
      final = true;
      show("final", "Trip over");
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + panel.dataset.socketPath);
    socket.addEventListener("open", function () {
      attempt = 0;
    });
    socket.addEventListener("message", function (event) {
      const message = JSON.parse(event.data);
      if (message.type === "trip.state") {
        apply(message);
        // The first state comes on connect: the page is current from here on.
        if (!final) show("live", "Live");
      }
      if (final) socket.close();
    });
    socket.addEventListener("close", function () {
      if (final) return;
      // Exponential backoff with jitter, so reconnecting pages do not all hit a restarted server at once.
      const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      show("offline", "Reconnecting…");
      window.setTimeout(connect, delay);
    });
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-dismiss-cancel]")) {
      event.preventDefault();
      cancelPanel.innerHTML = "";
    }
  });

  if (!final) connect();

  const mapElement = document.getElementById("trip-map");
  RideshareMap.cityMap(mapElement, { labels: false }).then(function (city) {
    const pickup = mapElement.dataset.pickup.split(",").map(Number);
    const dropoff = mapElement.dataset.dropoff.split(",").map(Number);
    L.polyline([pickup, dropoff], { color: "#1d2330", weight: 3, dashArray: "6 6" }).addTo(city.map);
    L.marker(pickup, { icon: RideshareMap.pinIcon("pickup"), title: "pickup" }).addTo(city.map);
    L.marker(dropoff, { icon: RideshareMap.pinIcon("dropoff"), title: "drop-off" }).addTo(city.map);
  });
})();
