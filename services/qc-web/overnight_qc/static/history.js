// Image page editor: earlier versions of the corrections (list, view read-only, restore).
//
// Loaded before editor.js, which calls window.overnightHistory.attach(editor) with
//   editor.call(url, body)      GET (no body) or POST JSON; resolves to {ok, code, answer}
//   editor.say(text, isError)   the editor's status line
//   editor.refusal(result)      why a write was refused, in words
//   editor.hasEdits()           true while there are unsaved edits
//   editor.latest()             the latest stored version (0: none, the model's result)
//   editor.viewing()            the version shown read-only (0: the model's result), or null
//   editor.load(answer, viewing, changedCells)
//                               draw a state: an earlier version read-only (viewing: its number,
//                               changedCells: its cell ids that changed from its parent,
//                               outlined), or viewing null: the latest, editable again
// and gets back {refresh, hide, back}: list the versions (the editor starts or saved), hide the
// list (the editor stops), go back to the latest version (Esc while viewing).
(function () {
  "use strict";

  function versionName(version) { return version ? "v" + version : "the model result"; }

  function attach(editor) {
    const data = document.getElementById("page-data").dataset;
    const box = document.getElementById("edit-versions");
    const list = document.getElementById("version-list");
    const view = document.getElementById("version-view");
    const note = document.getElementById("version-note");
    const changedLine = document.getElementById("version-changed");
    let changedOf = {};  // version → its cell ids changed from its parent (from the last listing)
    let parentOf = {};  // version → its parent version (0: the model result)

    function item(version, who, when, text, noteText) {
      const li = document.createElement("li");
      li.dataset.version = version;
      li.classList.toggle("viewing", editor.viewing() === version);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small view-version";
      button.textContent = version ? "v" + version : "model";
      button.title = "view " + versionName(version) + " read-only";
      button.addEventListener("click", function () { viewVersion(version); });
      li.appendChild(button);
      li.appendChild(document.createTextNode(" " + [who, when].filter(Boolean).join(" · ")));
      const what = document.createElement("div");
      what.className = "version-changes";
      what.textContent = text;
      li.appendChild(what);
      if (noteText) {
        const quote = document.createElement("q");
        quote.className = "note muted";
        quote.textContent = noteText;
        li.appendChild(quote);
      }
      return li;
    }

    async function refresh() {
      const result = await editor.call(data.versionsUrl);
      if (!result.ok) { editor.say("versions not listed: " + (result.answer.detail || result.code), true); return; }
      const listed = result.answer;
      changedOf = {};
      parentOf = {};
      const items = listed.versions.slice().reverse().map(function (v) {
        changedOf[v.version] = v.changed_cells || [];
        parentOf[v.version] = v.parent_version || 0;
        const restored = v.restored_from === null || v.restored_from === undefined ? "" : "restored " + versionName(v.restored_from) + ": ";
        const latest = v.version === listed.latest ? " (latest)" : "";
        return item(v.version, v.author, v.created_at.replace("T", " ").replace("+00:00", " UTC"),
          restored + v.summary + " → " + v.cell_count + " cells, " + v.particle_count + " particles" + latest, v.note);
      });
      items.push(item(0, "", "", "the model result: " + listed.model.cell_count + " cells, " + listed.model.particle_count + " particles" + (listed.latest ? "" : " (latest)"), ""));
      list.replaceChildren.apply(list, items);
      list.dataset.latest = listed.latest || 0;
      box.hidden = false;
    }

    function markViewed() {
      const viewing = editor.viewing();
      list.querySelectorAll("li").forEach(function (li) { li.classList.toggle("viewing", Number(li.dataset.version) === viewing); });
      view.hidden = viewing === null;
      if (viewing === null) return;
      document.getElementById("version-view-name").textContent = versionName(viewing);
      const changed = changedOf[viewing] || [];
      changedLine.hidden = !changed.length;
      document.getElementById("version-changed-count").textContent =
        changed.length + " cell" + (changed.length === 1 ? "" : "s") + " changed from " + versionName(parentOf[viewing] || 0);
    }

    async function viewVersion(version) {
      if (version === editor.latest()) { back(); return; }
      if (editor.hasEdits() && !window.confirm("View " + versionName(version) + "? Your unsaved edits are lost.")) return;
      editor.say("loading " + versionName(version) + "…");
      const result = await editor.call(data.annotationUrl + "?version=" + version);
      if (!result.ok) { editor.say("cannot show " + versionName(version) + ": " + (result.answer.detail || result.code), true); return; }
      const shown = editor.load(result.answer, version, changedOf[version] || []);
      markViewed();
      await shown;
      editor.say("");
    }

    async function back() {
      const result = await editor.call(data.annotationUrl);
      if (!result.ok) { editor.say("cannot load the latest version: " + (result.answer.detail || result.code), true); return; }
      const shown = editor.load(result.answer, null);
      markViewed();
      await shown;
      editor.say("");
    }

    async function restore() {
      const version = editor.viewing();
      if (version === null) return;
      editor.say("restoring " + versionName(version) + "…");
      const result = await editor.call(data.restoreUrl, { version: version, base_version: editor.latest() || null, note: note.value });
      if (!result.ok) { editor.say("not restored: " + editor.refusal(result), true); return; }
      note.value = "";
      const shown = editor.load(result.answer, null);
      markViewed();
      await shown;
      editor.say("restored " + versionName(version) + " as version " + result.answer.version + " by " + result.answer.author + " (reload for the corrected numbers)");
      refresh();
    }

    function hide() {
      view.hidden = true;
      box.hidden = true;
    }

    document.getElementById("version-restore").addEventListener("click", restore);
    document.getElementById("version-back").addEventListener("click", back);
    return { refresh: refresh, hide: hide, back: back };
  }

  window.overnightHistory = { attach: attach, versionName: versionName };
})();
