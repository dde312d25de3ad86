/* The city map without a tile server: the zones from /city/zones.geojson drawn as polygons on a
   plain background. Shared by the booking page and the trip page. */
(function () {
  "use strict";

  const ZONE_STYLE = {
    color: "#0b6e4f",
    weight: 1,
    opacity: 0.45,
    fillColor: "#ffffff",
    fillOpacity: 0.85,
    interactive: false,
  };

  // Draw the zones into `element` (which names the GeoJSON in data-zones-url), labelled unless
  // options.labels is false, and resolve to {map, bounds, contains(latlng), zoneAt(latlng)}.
  function cityMap(element, options) {
    const labels = !options || options.labels !== false;
    const map = L.map(element, {
      attributionControl: false,
      zoomSnap: 0.25,
      minZoom: 10,
      maxZoom: 17,
    });
    element.leafletMap = map;
    // Zone names sit below the markers (Leaflet puts tooltips above everything by default).
    map.createPane("zoneLabels");
    map.getPane("zoneLabels").style.zIndex = 450;
    map.getPane("zoneLabels").style.pointerEvents = "none";
    return fetch(element.dataset.zonesUrl, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("zones: HTTP " + response.status);
        return response.json();
      })
      .then(function (zones) {
        const layer = L.geoJSON(zones, {
          style: ZONE_STYLE,
          onEachFeature: function (feature, zoneLayer) {
            if (!labels) return;
            zoneLayer.bindTooltip(feature.properties.zone, {
              permanent: true,
              direction: "center",
              className: "zone-label",
              pane: "zoneLabels",
            });
          },
        }).addTo(map);
        // GeoJSON bbox order: west, south, east, north.
        const [west, south, east, north] = zones.bbox;
        const bounds = L.latLngBounds([south, west], [north, east]);
        map.fitBounds(bounds, { padding: [16, 16] });
        map.setMaxBounds(bounds.pad(0.6));
        function contains(latlng) {
          return latlng.lat >= south && latlng.lat <= north && latlng.lng >= west && latlng.lng <= east;
        }
        function zoneAt(latlng) {
          let found = null;
          layer.eachLayer(function (zoneLayer) {
            if (!found && zoneLayer.getBounds().contains(latlng)) found = zoneLayer.feature.properties.zone;
          });
          return found;
        }
        return { map: map, bounds: bounds, contains: contains, zoneAt: zoneAt };
      });
  }

  // A round marker icon labelled "A" (pickup) or "B" (drop-off).
  function pinIcon(kind) {
    return L.divIcon({
      className: "pin pin-" + kind,
      html: kind === "pickup" ? "A" : "B",
      iconSize: [30, 30],
      iconAnchor: [15, 15],
    });
  }

  window.RideshareMap = { cityMap: cityMap, pinIcon: pinIcon };
})();
