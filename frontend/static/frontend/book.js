/* Booking: click the map for the pickup, then the drop-off; drag either to adjust. Each change
   asks the server for the upfront fare (htmx, the "points-set" event on #quote-form). */
(function () {
  "use strict";

  const element = document.getElementById("map");
  const form = document.getElementById("quote-form");
  const hint = document.getElementById("map-hint");
  const message = document.getElementById("map-message");
  const startOver = document.getElementById("start-over");
  const quote = document.getElementById("quote");
  const OUTSIDE = "That point is outside the city. Pick a point inside the zones.";
  const LABEL = { pickup: "pickup", dropoff: "drop-off" };

  const points = { pickup: null, dropoff: null };
  const markers = { pickup: null, dropoff: null };

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function round6(x) {
    return Math.round(x * 1e6) / 1e6;
  }

  RideshareMap.cityMap(element)
    .then(function (city) {
      const map = city.map;

      function describe(which) {
        const point = points[which];
        const text = document.getElementById(which + "-text");
        text.textContent = point
          ? "zone " + city.zoneAt(point) + " (" + point.lat.toFixed(4) + ", " + point.lng.toFixed(4) + ")"
          : "not set";
        text.classList.toggle("muted", !point);
      }

      function showProgress() {
        if (!points.pickup) hint.innerHTML = "Click the map to set your <strong>pickup</strong>.";
        else if (!points.dropoff) hint.innerHTML = "Now click to set your <strong>drop-off</strong>.";
        else hint.innerHTML = "Drag <strong>A</strong> or <strong>B</strong> to adjust, or start over.";
        startOver.hidden = !points.pickup;
        describe("pickup");
        describe("dropoff");
      }

      function requote() {
        if (!points.pickup || !points.dropoff) return;
        document.getElementById("pickup_lat").value = round6(points.pickup.lat);
        document.getElementById("pickup_lng").value = round6(points.pickup.lng);
        document.getElementById("dropoff_lat").value = round6(points.dropoff.lat);
        document.getElementById("dropoff_lng").value = round6(points.dropoff.lng);
        htmx.trigger(form, "points-set");
      }

      function place(which, latlng) {
        points[which] = latlng;
        if (markers[which]) {
          markers[which].setLatLng(latlng);
        } else {
          const marker = L.marker(latlng, {
            icon: RideshareMap.pinIcon(which),
            draggable: true,
            title: LABEL[which],
            keyboard: false,
          }).addTo(map);
          marker.on("dragend", function () {
            const moved = marker.getLatLng();
            if (!city.contains(moved)) {
              say(OUTSIDE);
              marker.setLatLng(points[which]);
              return;
            }
            say("");
            points[which] = moved;
            showProgress();
            requote();
          });
          markers[which] = marker;
        }
        showProgress();
        requote();
      }

      map.on("click", function (event) {
        if (!city.contains(event.latlng)) {
          say(OUTSIDE);
          return;
        }
        say("");
        if (!points.pickup) place("pickup", event.latlng);
        else if (!points.dropoff) place("dropoff", event.latlng);
      });

      startOver.addEventListener("click", function () {
        ["pickup", "dropoff"].forEach(function (which) {
          if (markers[which]) map.removeLayer(markers[which]);
          markers[which] = null;
          points[which] = null;
        });
        quote.innerHTML = "";
        say("");
        showProgress();
      });

      showProgress();
    })
    .catch(function () {
      say("The city map could not be loaded. Reload the page to try again.");
    });
})();
