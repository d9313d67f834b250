// Image page: zoom/pan viewer with layers, cell highlighting, keyboard-driven review.
(function () {
  "use strict";
  const data = document.getElementById("page-data").dataset;
  const viewer = document.getElementById("viewer");
  const live = document.getElementById("stage-live");
  const qcStage = document.getElementById("stage-qc");
  const qcImg = document.getElementById("qc-img");
  const qcMode = document.getElementById("qc-mode");
  const view = { scale: 1, x: 0, y: 0 };
  let stage = live;

  function stageSize() {
    if (stage === live) return [Number(live.dataset.width), Number(live.dataset.height)];
    return [qcImg.naturalWidth || 800, qcImg.naturalHeight || 800];
  }

  function apply() {
    const [w, h] = stageSize();
    stage.style.width = w + "px";
    stage.style.height = h + "px";
    stage.style.transform = "translate(" + view.x + "px," + view.y + "px) scale(" + view.scale + ")";
    stage.classList.toggle("pixelated", view.scale > 2);
  }

  function fit() {
    const [w, h] = stageSize();
    const box = viewer.getBoundingClientRect();
    view.scale = Math.min(box.width / w, box.height / h);
    view.x = (box.width - w * view.scale) / 2;
    view.y = (box.height - h * view.scale) / 2;
    apply();
  }

  function zoomAt(factor, cx, cy) {
    const next = Math.max(0.05, Math.min(40, view.scale * factor));
    const k = next / view.scale;
    view.x = cx - (cx - view.x) * k;
    view.y = cy - (cy - view.y) * k;
    view.scale = next;
    apply();
  }

  function zoomCentre(factor) {
    const box = viewer.getBoundingClientRect();
    zoomAt(factor, box.width / 2, box.height / 2);
  }

  function centreOn(x, y, minScale) {
    const box = viewer.getBoundingClientRect();
    view.scale = Math.max(view.scale, minScale);
    view.x = box.width / 2 - x * view.scale;
    view.y = box.height / 2 - y * view.scale;
    apply();
  }

  viewer.addEventListener("wheel", function (event) {
    event.preventDefault();
    const box = viewer.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });

  // Image coordinates of a pointer event: stage px, where pixel i covers [i, i + 1).
  function stagePoint(event) {
    const box = viewer.getBoundingClientRect();
    return { u: (event.clientX - box.left - view.x) / view.scale, v: (event.clientY - box.top - view.y) / view.scale };
  }
  function emit(name, event, extra) {
    viewer.dispatchEvent(new CustomEvent(name, { detail: Object.assign(stagePoint(event), { shift: event.shiftKey }, extra || {}) }));
  }

  let drag = null;
  let painting = false;
  viewer.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    if (viewer.dataset.paint === "on" && stage === live) {  // the editor's brush: paint, do not pan
      painting = true;
      viewer.setPointerCapture(event.pointerId);
      emit("stage-paint", event, { phase: "start" });
      return;
    }
    drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y, moved: false };
    viewer.setPointerCapture(event.pointerId);
    viewer.classList.add("dragging");
  });
  viewer.addEventListener("pointermove", function (event) {
    if (painting) { emit("stage-paint", event, { phase: "move" }); return; }
    if (!drag) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    apply();
  });
  viewer.addEventListener("pointerup", function (event) {
    if (painting) { painting = false; emit("stage-paint", event, { phase: "end" }); return; }
    const wasClick = drag && !drag.moved;
    drag = null;
    viewer.classList.remove("dragging");
    if (wasClick && viewer.dataset.tool && stage === live) { emit("stage-click", event); return; }
    if (wasClick) {
      const hit = document.elementsFromPoint(event.clientX, event.clientY).find(function (el) { return el.matches && el.matches("path.cell"); });
      if (hit) highlight(hit.dataset.cell, false);
    }
  });
  viewer.addEventListener("dblclick", function () { if (!viewer.dataset.tool) fit(); });
  document.getElementById("zoom-in").addEventListener("click", function () { zoomCentre(1.5); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoomCentre(1 / 1.5); });
  document.getElementById("zoom-fit").addEventListener("click", fit);
  window.addEventListener("resize", fit);

  // -- layers ------------------------------------------------------------------------------
  const toggles = Array.from(document.querySelectorAll("#layer-bar input[data-layer]"));
  function syncLayer(input) {
    live.querySelectorAll('[data-layer="' + input.dataset.layer + '"]').forEach(function (el) { el.toggleAttribute("hidden", !input.checked); });
  }
  toggles.forEach(function (input) { input.addEventListener("change", function () { syncLayer(input); }); syncLayer(input); });
  function flip(name) {
    const input = toggles.find(function (t) { return t.dataset.layer === name; });
    if (input) { input.checked = !input.checked; syncLayer(input); }
  }
  live.querySelectorAll("img.channel").forEach(function (img) {
    img.addEventListener("error", function () { img.remove(); });
  });

  function setQcMode(on) {
    qcMode.checked = on;
    if (on && !qcImg.src) {
      qcImg.addEventListener("load", function () { if (stage === qcStage) fit(); }, { once: true });
      qcImg.src = qcImg.dataset.src;
    }
    live.hidden = on;
    qcStage.hidden = !on;
    stage = on ? qcStage : live;
    fit();
  }
  qcMode.addEventListener("change", function () { setQcMode(qcMode.checked); });

  // -- cells -------------------------------------------------------------------------------
  const cellRows = Array.from(document.querySelectorAll("#cells tbody tr"));
  document.querySelectorAll("#cells .dot").forEach(function (dot) { dot.style.background = dot.dataset.colour; });
  function highlight(cellId, centre) {
    document.querySelectorAll("path.cell.highlight, #cells tr.highlight").forEach(function (el) { el.classList.remove("highlight"); });
    const path = live.querySelector('path.cell[data-cell="' + cellId + '"]');
    const row = cellRows.find(function (r) { return r.dataset.cell === String(cellId); });
    if (path) path.classList.add("highlight");
    if (row) {
      row.classList.add("highlight");
      if (!centre) row.scrollIntoView({ block: "nearest" });
      if (centre) { if (stage !== live) setQcMode(false); centreOn(Number(row.dataset.x), Number(row.dataset.y), 2); }
    }
  }
  cellRows.forEach(function (row) { row.addEventListener("click", function () { highlight(row.dataset.cell, true); }); });

  // -- review ------------------------------------------------------------------------------
  const form = document.getElementById("verdict-form");
  const comment = document.getElementById("comment");
  const status = document.getElementById("verdict-status");
  const badge = document.getElementById("verdict-badge");
  const advance = document.getElementById("advance");

  function go(url) { if (url) window.location.href = url; }

  async function submit(verdict) {
    if (!form) { status.textContent = "Sign in to review."; return; }
    const body = new FormData(form);
    body.set("verdict", verdict);
    status.classList.remove("error");
    status.textContent = "saving…";
    try {
      const response = await fetch(data.verdictUrl, { method: "POST", body: body, headers: { Accept: "application/json" }, credentials: "same-origin" });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.detail || response.statusText);
      badge.textContent = answer.verdict;
      badge.className = "pill " + answer.verdict;
      status.textContent = "saved: " + answer.verdict + (answer.comment ? " — " + answer.comment : "");
      if (advance && advance.checked && data.nextUrl) go(data.nextUrl);
      else window.location.reload();
    } catch (err) {
      status.classList.add("error");
      status.textContent = "not saved: " + err.message;
    }
  }

  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const button = event.submitter;
      if (button && button.value) submit(button.value);
    });
  }

  const help = document.getElementById("help");
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === comment) {
      if (event.key === "Escape") { comment.blur(); viewer.focus(); }
      return;
    }
    if (event.target.closest("input, select, textarea") && event.key !== "Escape") return;
    const key = event.key;
    const actions = {
      a: function () { submit("accepted"); }, r: function () { submit("rejected"); }, f: function () { submit("flagged"); },
      c: function () { if (comment) comment.focus(); },
      j: function () { go(data.nextUrl); }, ArrowRight: function () { go(data.nextUrl); },
      k: function () { go(data.prevUrl); }, ArrowLeft: function () { go(data.prevUrl); },
      u: function () { go(data.backUrl); },
      "+": function () { zoomCentre(1.5); }, "=": function () { zoomCentre(1.5); }, "-": function () { zoomCentre(1 / 1.5); }, "0": fit,
      o: function () { flip("outlines"); }, p: function () { flip("pnps"); }, n: function () { flip("counts"); },
      q: function () { setQcMode(!qcMode.checked); },
      "?": function () { if (help.open) help.close(); else help.showModal(); },
    };
    if (/^[1-9]$/.test(key)) { flip("ch" + (Number(key) - 1)); event.preventDefault(); return; }
    if (actions[key]) { actions[key](); event.preventDefault(); }
  });

  window.overnightViewer = { fit: fit, setQcMode: setQcMode };
  fit();
})();
