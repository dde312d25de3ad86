/* The case page's map: the city's zones, the trip's pickup (A) and drop-off (B) when the
   payment carried them, and where the rider's device was when it paid, if shared. */
(function () {
  "use strict";

  const element = document.getElementById("case-map");
  if (!element || !window.RideshareMap) return;

  function point(value) {
    return value ? value.split(",").map(Number) : null;
  }

  RideshareMap.cityMap(element, { labels: false }).then(function (city) {
    const pickup = point(element.dataset.pickup);
    const dropoff = point(element.dataset.dropoff);
    const rider = point(element.dataset.rider);
    const shown = [];
    if (pickup && dropoff) {
      L.polyline([pickup, dropoff], { color: "#1d2330", weight: 3, dashArray: "6 6" }).addTo(city.map);
    }
    if (pickup) {
      L.marker(pickup, { icon: RideshareMap.pinIcon("pickup"), title: "pickup" }).addTo(city.map);
      shown.push(pickup);
    }
    if (dropoff) {
      L.marker(dropoff, { icon: RideshareMap.pinIcon("dropoff"), title: "drop-off" }).addTo(city.map);
      shown.push(dropoff);
    }
    if (rider) {
      L.circleMarker(rider, { radius: 7, color: "#c0392b", fillOpacity: 0.8 })
        .bindTooltip("the rider's device when it paid")
        .addTo(city.map);
      shown.push(rider);
    }
    element.dataset.drawn = String(shown.length);
  }).catch(function () {
    element.textContent = "The city map could not be loaded.";
  });
})();
