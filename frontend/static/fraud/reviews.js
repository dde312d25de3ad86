/* The review queue and case page, by keyboard. Queue: j/k move the selection, Enter opens it,
   a/f/l/r decide the selected rows (or the highlighted one) in bulk. Case: a/f/l/r decide
   (the server then opens the next review), n writes a note that goes with the decision.
   ? shows the keys everywhere. Keys are ignored while typing in a field. */
(function () {
  "use strict";

  // The explanation's bars: their width from data-width, set here rather than in a style
  // attribute, which the Content-Security-Policy refuses.
  document.querySelectorAll(".bar[data-width]").forEach(function (bar) {
    bar.style.setProperty("--w", bar.dataset.width + "%");
  });

  const help = document.getElementById("keys-help");
  const rows = Array.from(document.querySelectorAll("#queue-rows .review-row"));
  const decideForm = document.getElementById("decide-form");
  const bulkForm = document.getElementById("bulk-form");
  let current = rows.length ? 0 : -1;

  function highlight(index) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) {
      row.classList.toggle("current", i === current);
      row.setAttribute("aria-selected", i === current ? "true" : "false");
    });
    rows[current].scrollIntoView({ block: "nearest" });
  }

  // The outcome buttons carry their key (data-key, from the server's one table of keys).
  function outcomeButton(form, key) {
    return form ? form.querySelector('button[name="outcome"][data-key="' + key + '"]') : null;
  }

  function typing(event) {
    const tag = event.target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.target.isContentEditable;
  }

  rows.forEach(function (row, i) {
    row.addEventListener("click", function (event) {
      if (event.target.tagName === "INPUT" || event.target.tagName === "A") return;
      highlight(i);
    });
    row.addEventListener("dblclick", function () { window.location = row.dataset.href; });
  });
  highlight(current);

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    if (key === "?") {
      event.preventDefault();
      if (help.open) help.close(); else help.showModal();
      return;
    }
    if (help.open) return;
    if (rows.length) {
      if (key === "j") { highlight(current + 1); return; }
      if (key === "k") { highlight(current - 1); return; }
      if (key === "Enter" && current >= 0) { window.location = rows[current].dataset.href; return; }
      const bulk = outcomeButton(bulkForm, key);
      if (bulk) {
        const checked = bulkForm.querySelectorAll('input[name="review"]:checked');
        if (!checked.length && current >= 0) {
          rows[current].querySelector('input[name="review"]').checked = true;
        }
        bulk.click();
        return;
      }
    }
    const decide = outcomeButton(decideForm, key);
    if (decide) { event.preventDefault(); decide.click(); return; }
    if (key === "n") {
      // On an open case the note goes with the decision; on a closed one, to the notes.
      const note = document.getElementById("decide-note") || document.getElementById("note-text");
      if (note) { event.preventDefault(); note.focus(); }
    }
  });
})();
