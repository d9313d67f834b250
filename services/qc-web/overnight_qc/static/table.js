// Dataset table: click a row to open the image; j/k move the selection, Enter opens it.
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll("#images tbody tr[data-href]"));
  let current = -1;

  function select(i) {
    if (!rows.length) return;
    if (current >= 0) rows[current].classList.remove("current");
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows[current].classList.add("current");
    rows[current].scrollIntoView({ block: "nearest" });
  }

  rows.forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, select")) return;
      window.location.href = row.dataset.href;
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "j" || event.key === "ArrowDown") { select(current + 1); event.preventDefault(); }
    else if (event.key === "k" || event.key === "ArrowUp") { select(current - 1); event.preventDefault(); }
    else if (event.key === "Enter" && current >= 0) { window.location.href = rows[current].dataset.href; }
    else if (event.key === "ArrowRight" || event.key === "n") { const a = document.querySelector(".pager a[rel=next]"); if (a) window.location.href = a.href; }
    else if (event.key === "ArrowLeft" || event.key === "p") { const a = document.querySelector(".pager a[rel=prev]"); if (a) window.location.href = a.href; }
  });
})();
