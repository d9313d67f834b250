// Image page editor: correct cells and particles, preview on the server, save as a version.
//
// The page keeps the list of operations made since the loaded version; every change sends
// the whole list to .../annotation/preview, which replays it with overnight.review.edits and
// answers the edited state (an id map PNG, cells, spots). Undo/redo move operations between
// two stacks. Save sends the same list with the loaded version (409 when someone else saved).
// history.js (loaded first) lists the earlier versions and shows one read-only through load()
// (edit.viewing: its number, 0 for the model's result; its changed cells are outlined).
(function () {
  "use strict";
  const data = document.getElementById("page-data").dataset;
  const viewer = document.getElementById("viewer");
  const canvas = document.getElementById("edit-canvas");
  const marks = document.getElementById("edit-marks");
  const spotLayer = document.getElementById("edit-spots");
  const draftLine = document.getElementById("edit-draft");
  const panel = document.getElementById("edit-tools");
  const toggle = document.getElementById("edit-toggle");
  const badge = document.getElementById("edit-state");
  const status = document.getElementById("edit-status");
  const hint = document.getElementById("edit-hint");
  const totals = document.getElementById("edit-totals");
  const typeInput = document.getElementById("edit-type");
  const multiplicityInput = document.getElementById("edit-multiplicity");
  const brushInput = document.getElementById("edit-brush");
  const noteInput = document.getElementById("edit-note");
  const modelLayers = Array.from(document.querySelectorAll('#overlay [data-layer="outlines"], #overlay [data-layer="pnps"], #overlay [data-layer="counts"]'));
  if (!canvas || !panel) return;
  const colours = JSON.parse(data.colours || "{}");
  const SVG = "http://www.w3.org/2000/svg";
  const CHANGED_RGB = [255, 0, 255];  // outline of the cells a viewed version changed (qc.css: .changed-swatch)
  const HINTS = {
    delete: "click a cell to delete it",
    merge: "click the cell to keep, then the cell to join into it",
    split: "click points of a line across the cell, Enter to cut, Esc to cancel",
    polygon: "click the corners of the missing cell, Enter to close it, Esc to cancel",
    brush: "paint the missing cell (drag); [ and ] change the brush size",
    type: "click a cell to give it the type in the box",
    add: "click to add a particle",
    remove: "click a particle to remove it",
    multiplicity: "click a particle to set how many particles it holds (the number in the box)",
  };
  const KEYS = { x: "delete", m: "merge", s: "split", d: "polygon", b: "brush", t: "type", i: "add", l: "remove", g: "multiplicity" };

  const edit = { on: false, base: null, latest: null, ops: [], redo: [], state: null, ids: null, tool: "", picked: null, draft: [], stroke: null, seq: 0, viewing: null, changed: new Set() };

  function say(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  const versionName = window.overnightHistory ? window.overnightHistory.versionName : function (v) { return v ? "v" + v : "the model result"; };

  function showState() {
    if (edit.viewing !== null) {
      badge.textContent = "viewing " + versionName(edit.viewing) + " (read-only)";
      badge.dataset.state = "viewing";
    } else if (edit.ops.length) {
      badge.textContent = "edited (unsaved): " + edit.ops.length + " change" + (edit.ops.length === 1 ? "" : "s");
      badge.dataset.state = "edited";
    } else if (edit.base) {
      badge.textContent = "saved v" + edit.base;
      badge.dataset.state = "saved";
    } else {
      badge.textContent = "model result";
      badge.dataset.state = "model";
    }
    document.getElementById("edit-undo").disabled = !edit.ops.length;
    document.getElementById("edit-redo").disabled = !edit.redo.length;
    document.getElementById("edit-save").disabled = !edit.ops.length;
  }

  // -- drawing the edited state -------------------------------------------------------------
  function hexRgb(hex) {
    const h = (hex || "#ffffff").replace("#", "");
    return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
  }

  function drawOutlines() {
    const st = edit.state, ids = edit.ids;
    const w = st.width, h = st.height;
    const ctx = canvas.getContext("2d");
    const out = ctx.createImageData(w, h);
    const typeOf = {};
    st.cells.forEach(function (c) { typeOf[c.cell_id] = c.cell_type; });
    const rgbOf = {};
    for (let p = 0; p < ids.length; p++) {
      const id = ids[p];
      if (!id) continue;
      const x = p % w, y = (p - x) / w;
      const picked = id === edit.picked;
      const changed = edit.changed.has(id);
      const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || ids[p - 1] !== id || ids[p + 1] !== id || ids[p - w] !== id || ids[p + w] !== id;
      if (!edge && !picked && !changed) continue;
      const rgb = changed ? CHANGED_RGB : rgbOf[id] || (rgbOf[id] = hexRgb(typeOf[id] ? colours[typeOf[id]] || "#ffffff" : "#ffffff"));
      out.data[4 * p] = picked ? 255 : rgb[0];
      out.data[4 * p + 1] = picked ? 255 : rgb[1];
      out.data[4 * p + 2] = picked ? 255 : rgb[2];
      out.data[4 * p + 3] = edge ? 255 : picked ? 90 : 40;
    }
    ctx.putImageData(out, 0, 0);
  }

  function drawSpots() {
    spotLayer.replaceChildren();
    edit.state.spots.forEach(function (s) {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", s[1] + 0.5);
      dot.setAttribute("cy", s[0] + 0.5);
      dot.setAttribute("r", 1.2 + 0.6 * s[2]);
      dot.setAttribute("class", "pnp edit-spot" + (s[3] === 0 ? " glass" : ""));
      dot.dataset.multiplicity = s[2];
      spotLayer.appendChild(dot);
      if (s[2] > 1) {
        const label = document.createElementNS(SVG, "text");
        label.setAttribute("x", s[1] + 0.5);
        label.setAttribute("y", s[0] - 2.5);
        label.textContent = "×" + s[2];
        spotLayer.appendChild(label);
      }
    });
  }

  function drawDraft() {
    const pts = edit.draft.map(function (p) { return (p[1] + 0.5) + "," + (p[0] + 0.5); });
    draftLine.setAttribute("points", pts.join(" "));
    draftLine.classList.toggle("closed", edit.tool === "polygon");
  }

  function render() {
    drawOutlines();
    drawSpots();
    drawDraft();
    totals.textContent = edit.state.cell_count + " cells · " + edit.state.particle_count + " particles" + (edit.ops.length ? " (edited, unsaved)" : edit.viewing !== null ? " in " + versionName(edit.viewing) : "");
    totals.dataset.cells = edit.state.cell_count;
    totals.dataset.particles = edit.state.particle_count;
    showState();
  }

  function decode(state) {
    return new Promise(function (resolve, reject) {
      const img = new Image();
      img.onload = function () {
        const scratch = document.createElement("canvas");
        scratch.width = state.width;
        scratch.height = state.height;
        const ctx = scratch.getContext("2d", { willReadFrequently: true });
        ctx.drawImage(img, 0, 0);
        const rgba = ctx.getImageData(0, 0, state.width, state.height).data;
        const ids = new Uint32Array(state.width * state.height);
        for (let p = 0; p < ids.length; p++) ids[p] = rgba[4 * p] + 256 * rgba[4 * p + 1] + 65536 * rgba[4 * p + 2];
        resolve(ids);
      };
      img.onerror = function () { reject(new Error("the id map could not be read")); };
      img.src = state.id_map;
    });
  }

  async function show(state) {
    const ids = await decode(state);
    edit.state = state;
    edit.ids = ids;
    canvas.width = state.width;
    canvas.height = state.height;
    canvas.dataset.changed = Array.from(edit.changed).sort(function (a, b) { return a - b; }).join(" ");
    render();
  }

  // Draw a stored state: an earlier version read-only (viewing: its number, 0 = the model's
  // result; changedCells: its cells that changed from its parent, outlined) or, viewing null,
  // the latest version, editable (answer.version is the new base, answer.latest the latest).
  function load(answer, viewing, changedCells) {
    edit.seq++;  // an answer to an earlier preview must not draw over this state
    edit.ops = [];
    edit.redo = [];
    edit.draft = [];
    edit.picked = null;
    edit.viewing = viewing;
    edit.changed = new Set(viewing === null ? [] : changedCells || []);
    if (viewing === null) {
      edit.base = answer.version;
      edit.latest = answer.latest;
    }
    panel.hidden = viewing !== null;
    if (viewing !== null) {
      viewer.dataset.tool = "";
      viewer.dataset.paint = "off";
    } else setTool(edit.tool || "delete");
    return show(answer);
  }

  // -- talking to the server ----------------------------------------------------------------
  async function call(url, body) {
    const options = body === undefined
      ? { headers: { Accept: "application/json" }, credentials: "same-origin" }
      : { method: "POST", body: JSON.stringify(body), headers: { Accept: "application/json", "Content-Type": "application/json" }, credentials: "same-origin" };
    const response = await fetch(url, options);
    let answer = {};
    try { answer = await response.json(); } catch (err) { answer = { detail: response.statusText }; }
    return { ok: response.ok, code: response.status, answer: answer };
  }

  async function preview() {
    const seq = ++edit.seq;
    say("updating…");
    const result = await call(data.previewUrl, { base_version: edit.base, ops: edit.ops });
    if (seq !== edit.seq) return true;
    if (!result.ok) {
      say("edit not applied: " + (result.answer.detail || result.code), true);
      return false;
    }
    await show(result.answer);
    say("");
    return true;
  }

  async function push(op) {
    edit.ops.push(op);
    edit.redo = [];
    showState();
    if (!(await preview())) { edit.ops.pop(); showState(); }
  }

  function undo() { if (edit.ops.length) { edit.redo.push(edit.ops.pop()); preview(); } }
  function redo() { if (edit.redo.length) { edit.ops.push(edit.redo.pop()); preview(); } }

  async function save() {
    if (!edit.ops.length) return;
    say("saving…");
    const result = await call(data.annotationUrl, { base_version: edit.base, ops: edit.ops, note: noteInput.value });
    if (result.ok) {
      edit.base = edit.latest = result.answer.version;
      edit.ops = [];
      edit.redo = [];
      noteInput.value = "";
      await show(result.answer);
      say("saved as version " + edit.base + " by " + result.answer.author + " (reload for the corrected numbers)");
      versions.refresh();
      return;
    }
    say("not saved: " + refusal(result), true);
  }

  function refusal(result) {
    return result.code === 409 ? result.answer.detail
      : result.code === 401 || result.code === 403 ? "sign in (or set the token) to save corrections: " + (result.answer.detail || "")
      : result.answer.detail || ("error " + result.code);
  }

  // -- tools --------------------------------------------------------------------------------
  function setTool(name) {
    edit.tool = name;
    edit.picked = null;
    edit.draft = [];
    viewer.dataset.tool = name || "";
    viewer.dataset.paint = name === "brush" ? "on" : "off";
    panel.querySelectorAll("input[name=tool]").forEach(function (r) { r.checked = r.value === name; });
    hint.textContent = HINTS[name] || "pick a tool";
    if (edit.state) render();
  }

  function cellAt(u, v) {
    const st = edit.state;
    const x = Math.floor(u), y = Math.floor(v);
    if (x < 0 || y < 0 || x >= st.width || y >= st.height) return 0;
    return edit.ids[y * st.width + x];
  }

  function nearestSpot(y, x) {
    let best = null, bestD = 6;
    edit.state.spots.forEach(function (s) {
      const d = Math.hypot(s[0] - y, s[1] - x);
      if (d <= bestD) { best = s; bestD = d; }
    });
    return best;
  }

  function onClick(event) {
    if (!edit.on || !edit.state || edit.viewing !== null) return;
    const u = event.detail.u, v = event.detail.v;
    const y = +(v - 0.5).toFixed(2), x = +(u - 0.5).toFixed(2);
    const cell = cellAt(u, v);
    const tool = edit.tool;
    if (tool === "split" || tool === "polygon") { edit.draft.push([y, x]); drawDraft(); return; }
    if (tool === "add") { push({ op: "add_spot", y: y, x: x }); return; }
    if (tool === "remove" || tool === "multiplicity") {
      const spot = nearestSpot(y, x);
      if (!spot) { say("no particle here: click on one", true); return; }
      if (tool === "remove") push({ op: "remove_spot", y: spot[0], x: spot[1] });
      else push({ op: "set_multiplicity", y: spot[0], x: spot[1], multiplicity: Number(multiplicityInput.value) || 1 });
      return;
    }
    if (!cell) { if (tool) say("no cell here: click inside a cell", true); return; }
    if (tool === "delete") push({ op: "delete_cell", cell_id: cell });
    else if (tool === "type") {
      const name = typeInput.value.trim();
      if (!name) { say("type a cell type name first", true); return; }
      push({ op: "set_cell_type", cell_id: cell, cell_type: name });
    } else if (tool === "merge") {
      if (!edit.picked) { edit.picked = cell; render(); say("now click the cell to join into cell " + cell); return; }
      const keep = edit.picked;
      edit.picked = null;
      if (keep === cell) { render(); say("pick two different cells", true); return; }
      push({ op: "merge_cells", keep_id: keep, other_id: cell });
    }
  }

  function finishDrawing() {
    const pts = edit.draft;
    edit.draft = [];
    drawDraft();
    if (edit.tool === "split" && pts.length >= 2) push({ op: "split_cell", line: pts });
    else if (edit.tool === "polygon" && pts.length >= 3) push({ op: "draw_polygon", polygon: pts });
    else if (pts.length) say("not enough points: a line needs 2, a polygon 3", true);
  }

  function onPaint(event) {
    if (!edit.on || edit.tool !== "brush" || edit.viewing !== null) return;
    const d = event.detail;
    const point = [+(d.v - 0.5).toFixed(1), +(d.u - 0.5).toFixed(1)];
    if (d.phase === "start") edit.stroke = [point];
    else if (edit.stroke) edit.stroke.push(point);
    edit.draft = edit.stroke ? edit.stroke.slice() : [];
    drawDraft();
    if (d.phase === "end" && edit.stroke) {
      const stroke = edit.stroke.filter(function (p, i) { return i % Math.ceil(edit.stroke.length / 2000) === 0; });
      edit.stroke = null;
      edit.draft = [];
      drawDraft();
      push({ op: "draw_brush", stroke: stroke, radius_px: Number(brushInput.value) || 3 });
    }
  }

  async function start() {
    say("loading…");
    const result = await call(data.annotationUrl);
    if (!result.ok) { say("cannot edit: " + (result.answer.detail || result.code), true); return; }
    edit.on = true;
    edit.base = result.answer.version;
    edit.latest = result.answer.latest;
    edit.ops = [];
    edit.redo = [];
    edit.viewing = null;
    edit.changed = new Set();
    if (window.overnightViewer) window.overnightViewer.setQcMode(false);
    modelLayers.forEach(function (el) { el.classList.add("editing-hidden"); });
    canvas.hidden = false;
    marks.removeAttribute("hidden");  // an SVG element has no .hidden property
    panel.hidden = false;
    toggle.textContent = "Stop editing";
    document.body.classList.add("editing");
    await show(result.answer);
    setTool(edit.tool || "delete");
    say("");
    versions.refresh();
  }

  function stop() {
    if (edit.ops.length && !window.confirm("Leave the editor? Unsaved edits are lost.")) return;
    edit.on = false;
    edit.ops = [];
    edit.viewing = null;
    edit.changed = new Set();
    versions.hide();
    setTool("");
    canvas.hidden = true;
    marks.setAttribute("hidden", "");
    panel.hidden = true;
    modelLayers.forEach(function (el) { el.classList.remove("editing-hidden"); });
    toggle.textContent = "Edit cells & particles";
    document.body.classList.remove("editing");
    viewer.dataset.tool = "";
    viewer.dataset.paint = "off";
    badge.textContent = edit.base ? "saved v" + edit.base : "model result";
  }

  toggle.addEventListener("click", function () { if (edit.on) stop(); else start(); });
  panel.querySelectorAll("input[name=tool]").forEach(function (r) { r.addEventListener("change", function () { setTool(r.value); }); });
  document.getElementById("edit-undo").addEventListener("click", undo);
  document.getElementById("edit-redo").addEventListener("click", redo);
  document.getElementById("edit-save").addEventListener("click", save);
  document.getElementById("edit-finish").addEventListener("click", finishDrawing);
  viewer.addEventListener("stage-click", onClick);
  viewer.addEventListener("stage-paint", onPaint);
  window.addEventListener("beforeunload", function (event) { if (edit.ops.length) { event.preventDefault(); event.returnValue = ""; } });

  // Capture phase: the editor's keys win over the viewer's while editing.
  document.addEventListener("keydown", function (event) {
    const inField = event.target.closest && event.target.closest("input, select, textarea");
    const key = event.key;
    const mod = event.ctrlKey || event.metaKey;
    if (!edit.on) {
      if (key === "e" && !inField && !mod && !event.altKey) { start(); event.preventDefault(); event.stopPropagation(); }
      return;
    }
    let handled = true;
    if (edit.viewing !== null) {  // read-only: only leave the version or the editor
      if (inField || mod || event.altKey) handled = false;
      else if (key === "Escape") versions.back();
      else if (key === "e") stop();
      else handled = false;
    } else if (mod && (key === "z" || key === "Z")) { if (event.shiftKey) redo(); else undo(); }
    else if (mod && key === "y") redo();
    else if (mod && key === "s") save();
    else if (inField || mod || event.altKey) handled = false;
    else if (KEYS[key]) setTool(KEYS[key]);
    else if (key === "z") undo();
    else if (key === "Z" || key === "y") redo();
    else if (key === "w") save();
    else if (key === "Enter") finishDrawing();
    else if (key === "Escape") { edit.draft = []; edit.picked = null; render(); }
    else if (key === "Backspace" && edit.draft.length) { edit.draft.pop(); drawDraft(); }
    else if (key === "[") brushInput.value = Math.max(1, Number(brushInput.value) - 1);
    else if (key === "]") brushInput.value = Math.min(50, Number(brushInput.value) + 1);
    else if (key === "e") stop();
    else handled = false;
    if (handled) { event.preventDefault(); event.stopPropagation(); }
  }, true);

  // The interface history.js works through (see there).
  const versions = window.overnightHistory ? window.overnightHistory.attach({
    call: call,
    say: say,
    refusal: refusal,
    hasEdits: function () { return edit.ops.length > 0; },
    latest: function () { return edit.latest || 0; },
    viewing: function () { return edit.viewing; },
    load: load,
  }) : { refresh: function () {}, hide: function () {}, back: function () {} };

  if (window.location.hash === "#edit") start();
})();
