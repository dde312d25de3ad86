/* The flagged payments page: new flags arrive over a websocket that reconnects with backoff.
   The socket's URL carries the highest flag id on the page, and the server first sends every
   flag after it, so flags scored while the socket was down show up on reconnect. A flag is
   shown once, in id order, whatever order the messages come in. */
(function () {
  "use strict";

  const rows = document.getElementById("flag-rows");
  const empty = document.getElementById("no-flags");
  const indicator = document.getElementById("live-indicator");
  const pageSize = Number(rows.dataset.pageSize);
  const BASE_DELAY_MS = 500;
  const MAX_DELAY_MS = 10000;

  let lastId = Number(rows.dataset.lastId);
  let attempt = 0;

  function show(state, text) {
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  function insert(flag) {
    if (document.getElementById("flag-" + flag.id)) return;
    const template = document.createElement("template");
    template.innerHTML = flag.html.trim();
    const row = template.content.firstElementChild;
    row.classList.add("flag-new");
    // Newest first; a flag committed late by another scorer goes where its id belongs.
    let before = null;
    for (const other of rows.rows) {
      if (Number(other.dataset.flagId) < flag.id) {
        before = other;
        break;
      }
    }
    rows.insertBefore(row, before);
    lastId = Math.max(lastId, flag.id);
  }

  function apply(message) {
    message.flags.forEach(insert);
    while (rows.rows.length > pageSize) rows.deleteRow(-1);
    rows.dataset.lastId = String(lastId);
    empty.hidden = rows.rows.length > 0;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const url = scheme + window.location.host + rows.dataset.socketPath + "?after=" + lastId;
    const socket = new WebSocket(url);
    socket.addEventListener("open", function () {
      attempt = 0;
    });
    socket.addEventListener("message", function (event) {
      const message = JSON.parse(event.data);
      if (message.type !== "fraud.flags") return;
      apply(message);
      // The server's first message is what the page missed (perhaps nothing): caught up now.
      show("live", "Live");
    });
    socket.addEventListener("close", function () {
      // Exponential backoff with jitter, so reconnecting pages do not all hit a restarted server at once.
      const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      show("offline", "Reconnecting…");
      window.setTimeout(connect, delay);
    });
  }

  connect();
})();
