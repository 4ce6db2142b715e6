// aihd review page: before/after cards from data.js, decisions kept in this browser until
// exported for `aihd review MANIFEST --apply FILE`. No network, no libraries. The hints it
// shows are whole commands data.js carries, quoted for a shell by aihd.
"use strict";
(function () {
  const data = window.AIHD_REVIEW;
  const main = document.getElementById("photos");
  const counts = document.getElementById("counts");
  const storageKey = "aihd-review:" + data.ledger + ":" + data.manifest + ":" + data.generated_at;
  const fromLedger = new Map(data.photos.map((p) => [p.id, p.decision]));
  const decisions = new Map(fromLedger);
  const cards = [];
  const filled = new Set();
  const FILL_AT_ONCE = 24;  // cards made whole at once; the rest as they come near the screen
  let filter = "all";
  let current = -1;

  function loadSaved() {
    try {
      const saved = JSON.parse(window.localStorage.getItem(storageKey) || "{}");
      for (const [id, decision] of Object.entries(saved)) decisions.set(Number(id), decision);
    } catch (err) {
      // Storage off (private mode): decisions live until the page closes; export still works.
    }
  }

  function save() {
    const changed = {};
    for (const [id, decision] of decisions) {
      if (decision !== fromLedger.get(id)) changed[id] = decision;
    }
    try {
      window.localStorage.setItem(storageKey, JSON.stringify(changed));
    } catch (err) {
      // See loadSaved.
    }
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function image(src, cls, alt) {
    return el("img", { src: src, class: cls, alt: alt, decoding: "async" });
  }

  function compare(photo) {
    const box = el("div", { class: "compare" });
    if (photo.after) box.append(image(photo.after, "after", "after: " + photo.name));
    if (photo.before) box.append(image(photo.before, "before", "before: " + photo.name));
    if (photo.after && photo.before) {
      box.append(el("div", { class: "handle" }));
      box.append(el("span", { class: "tag b" }, "Before"), el("span", { class: "tag a" }, "After"));
      const slider = el("input", {
        type: "range", min: "0", max: "100", value: "50", class: "slider", tabindex: "-1",
        "aria-label": "Before/after of " + photo.name,
      });
      slider.addEventListener("input", () => box.style.setProperty("--pos", slider.value + "%"));
      box.append(slider);
    } else {
      box.style.setProperty("--pos", "100%");
      const why = photo.state === "failed" ? "failed: " + (photo.error || "no reason recorded")
        : photo.state === "duplicate" ? "a copy of a photo already ordered: its results follow it"
        : photo.state + ": not collected yet (" + data.collect_command + ")";
      box.append(el("div", { class: "waiting" }, why));
    }
    return box;
  }

  function shell(photo, index) {
    const node = el("article", { class: "photo", "data-id": String(photo.id),
      "data-state": photo.state, "data-index": String(index) });
    node.addEventListener("click", () => select(index, false));
    return node;
  }

  // A 2,000-photo page opens fast because only the cards near the screen hold their images
  // and details; the others are empty boxes of the same size until they come near.
  function fill(index) {
    if (filled.has(index)) return;
    filled.add(index);
    const photo = data.photos[index];
    const node = cards[index];
    const meta = el("div", { class: "meta" });
    const toggles = photo.enhancements.length ? photo.enhancements.join(", ") : "no toggles";
    meta.append(
      el("a", { class: "name", href: photo.result_url || photo.original_url }, photo.name),
      el("span", {}, [photo.tool, photo.space, toggles].filter(Boolean).join(" · ")),
      el("span", {}, "order " + (photo.order_id || "none") + " · " + photo.cost + " credit"
        + (photo.cost === 1 ? "" : "s")),
      el("span", {}, "state: "),
    );
    meta.lastChild.append(el("span", { class: "state" }, photo.state));
    if (photo.error) meta.append(el("span", { class: "error" }, "error: " + photo.error));
    const verdict = el("span", { class: "verdict" });
    meta.append(verdict, el("span", { class: "hint" }));
    if (photo.state === "completed") {
      const actions = el("div", { class: "actions" });
      const approve = el("button", { type: "button", class: "approve" }, "Approve (a)");
      const reject = el("button", { type: "button", class: "reject" }, "Reject (r)");
      approve.addEventListener("click", () => decide(index, "approved"));
      reject.addEventListener("click", () => decide(index, "rejected"));
      actions.append(approve, reject);
      meta.append(actions);
    }
    node.append(compare(photo), meta);
    node.classList.add("filled");
    paint(index);
  }

  const nearScreen = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      fill(Number(entry.target.dataset.index));
      nearScreen.unobserve(entry.target);
    }
  }, { rootMargin: "1000px 0px" });

  function fillFirstShown() {
    let made = 0;
    for (let i = 0; i < cards.length && made < FILL_AT_ONCE; i += 1) {
      if (!cards[i].hidden) { fill(i); made += 1; }
    }
  }

  function paint(index) {
    if (!filled.has(index)) return;
    const photo = data.photos[index];
    const node = cards[index];
    const decision = decisions.get(photo.id) || "";
    node.dataset.decision = decision;
    node.querySelector(".verdict").textContent = decision ? "decision: " + decision : "";
    node.querySelector(".hint").textContent = decision === "rejected"
      ? "Not delivered. To order it again (1 credit): " + photo.reorder_command
      : "";
  }

  function matches(index) {
    const photo = data.photos[index];
    const decision = decisions.get(photo.id);
    switch (filter) {
      case "unreviewed": return photo.state === "completed" && !decision;
      case "approved": return decision === "approved";
      case "rejected": return decision === "rejected";
      case "failed": return photo.state === "failed";
      case "waiting": return photo.state !== "completed" && photo.state !== "failed";
      default: return true;
    }
  }

  function refresh() {
    let approved = 0, rejected = 0, unreviewed = 0, failed = 0;
    data.photos.forEach((photo, index) => {
      const decision = decisions.get(photo.id);
      if (decision === "approved") approved += 1;
      else if (decision === "rejected") rejected += 1;
      else if (photo.state === "completed") unreviewed += 1;
      if (photo.state === "failed") failed += 1;
      cards[index].hidden = !matches(index);
    });
    fillFirstShown();
    counts.textContent = data.photos.length + " photos · " + approved + " approved · " + rejected
      + " rejected · " + unreviewed + " unreviewed · " + failed + " failed";
  }

  function select(index, scroll) {
    if (current >= 0) cards[current].classList.remove("current");
    current = index;
    fill(index);
    cards[index].classList.add("current");
    if (scroll) cards[index].scrollIntoView({ block: "nearest" });
  }

  function decide(index, decision) {
    const photo = data.photos[index];
    if (photo.state !== "completed") return;  // only a collected result can be decided on
    if (decision) decisions.set(photo.id, decision); else decisions.delete(photo.id);
    save();
    paint(index);
    refresh();
  }

  function move(step) {
    for (let i = current + step; i >= 0 && i < cards.length; i += step) {
      if (!cards[i].hidden) { select(i, true); return; }
    }
  }

  function exportDecisions() {
    const list = [];
    data.photos.forEach((photo) => {
      const decision = decisions.get(photo.id);
      if (decision && decision !== fromLedger.get(photo.id)) {
        list.push({ photo_id: photo.id, path: photo.path, sha256: photo.sha256, decision: decision });
      }
    });
    const doc = { format: "aihd-review-decisions", version: 1, manifest: data.manifest,
      exported_at: new Date().toISOString(), decisions: list };
    const blob = new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: "aihd-decisions.json" });
    document.body.append(link);
    link.click();
    link.remove();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === "ArrowRight" || key === "ArrowDown" || key === "j") move(1);
    else if (key === "ArrowLeft" || key === "ArrowUp" || key === "k") move(-1);
    else if (current >= 0 && (key === "a" || key === "r" || key === "u")) {
      decide(current, key === "a" ? "approved" : key === "r" ? "rejected" : null);
    } else return;
    event.preventDefault();
  }

  function build() {
    loadSaved();
    const folders = new Map(data.folders.map((f) => [f.name, f]));
    const fragment = document.createDocumentFragment();
    let grid = null, heading = null;
    data.photos.forEach((photo, index) => {
      if (photo.folder !== heading) {
        heading = photo.folder;
        const folder = folders.get(photo.folder) || { listing: "", space: photo.space };
        const about = [folder.tool, folder.space, folder.exterior ? "exterior" : ""];
        fragment.append(el("h2", {}, (folder.listing ? folder.listing + " / " : "") + photo.folder
          + " (" + about.filter(Boolean).join(", ") + ")"));
        grid = el("section", { class: "grid" });
        fragment.append(grid);
      }
      const node = shell(photo, index);
      cards.push(node);
      grid.append(node);
    });
    main.append(fragment);
    for (const node of cards) nearScreen.observe(node);
    for (const button of document.querySelectorAll("#filters button")) {
      button.addEventListener("click", () => {
        filter = button.dataset.filter;
        for (const other of document.querySelectorAll("#filters button")) {
          other.setAttribute("aria-pressed", String(other === button));
        }
        refresh();
      });
    }
    document.getElementById("export").addEventListener("click", exportDecisions);
    document.addEventListener("keydown", onKey);
    refresh();
    if (cards.length) select(0, false);
    document.body.dataset.ready = "true";
  }

  build();
})();
