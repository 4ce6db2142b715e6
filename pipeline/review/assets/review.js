// aihd review: one script for the static page and the served desk. Static (file://, data.js):
// decisions stay in this browser until exported for `aihd review MANIFEST --apply FILE`.
// Served (the desk): each decision is saved in the ledger at once; progress and photos update
// by themselves (server-sent events). No libraries; every name is set as text, never as HTML;
// the hints are whole commands the server quoted for a shell.
"use strict";
(function () {
  const served = document.body.dataset.mode === "served";
  const byId = (id) => document.getElementById(id);
  const csrf = served ? document.querySelector("meta[name=aihd-csrf]").content : "";
  const main = byId("photos");
  const counts = byId("counts");
  const listingList = byId("listing-list");
  const nothing = byId("nothing");
  const loupe = byId("loupe");
  const reasonDialog = byId("reason-dialog");
  const askDialog = byId("ask-dialog");
  const FILL_AT_ONCE = 24; // cards made whole at once; the others as they come near the screen
  const STATE_WORDS = {
    pending: "not ordered yet",
    uploaded: "uploaded, not ordered yet",
    submitting: "ordered: its answer is being settled",
    submitted: "ordered: waiting for the result",
    completed: "collected",
    duplicate: "a copy of a photo ordered already: its result follows it",
    failed: "failed",
  };
  const REASONS = [
    "Looks artificial",
    "Colours are off",
    "Artefacts or distortion",
    "Changed or removed the wrong thing",
    "Windows or sky look wrong",
  ];
  const NOTHING = {
    all: "No photos in these folders yet.",
    unreviewed: "Nothing to review: every collected photo is decided.",
    approved: "No photo is approved.",
    rejected: "No photo is rejected.",
    failed: "No photo failed.",
    waiting: "Every photo is collected (or failed).",
  };

  let data = null;
  let photos = [];
  let cards = [];
  let filled = new Set();
  let indexById = new Map();
  let listingViews = new Map();
  let filter = "all";
  let current = -1;
  let observer = null;
  let storageKey = "";
  const fromLedger = new Map(); // static: each photo's decision as the page was written
  const pending = new Set(); // served: photos whose decision is being saved

  // -- small helpers ------------------------------------------------------------------------

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function picture(src, cls, alt) {
    const img = el("img", { src: src, class: cls, alt: alt, decoding: "async" });
    img.addEventListener("error", () => {
      img.replaceWith(el("span", { class: "unreadable" }, "cannot be shown"));
    });
    return img;
  }

  let toastTimer = 0;
  function toast(text, trouble) {
    const box = byId("toast");
    box.textContent = text;
    box.classList.toggle("trouble", Boolean(trouble));
    // A popover: above the full-size view and the dialogs too (the top layer).
    if (box.matches(":popover-open")) box.hidePopover();
    box.showPopover();
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(() => box.hidePopover(), trouble ? 9000 : 4000);
  }

  function stateWords(photo) {
    if (photo.state === "failed") return "failed: " + (photo.error || "no reason recorded");
    return STATE_WORDS[photo.state] || photo.state;
  }

  function credits(n) {
    return n + " credit" + (n === 1 ? "" : "s");
  }

  function toReview(photo) {
    return photo.state === "completed" && !photo.decision;
  }

  function manifestOf(photo) {
    return data.manifests[photo.manifest_index || 0];
  }

  function markSaving() {
    document.body.dataset.saving = String(pending.size);
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Aihd-Csrf": csrf },
      body: JSON.stringify(body),
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (err) {
      answer = {};
    }
    if (!response.ok) {
      throw new Error(answer.error || "the desk answered " + response.status);
    }
    return answer;
  }

  // -- static page: decisions kept in this browser ------------------------------------------

  function loadSaved() {
    try {
      const saved = JSON.parse(window.localStorage.getItem(storageKey) || "{}");
      for (const [id, said] of Object.entries(saved)) {
        const i = indexById.get(Number(id));
        if (i === undefined) continue;
        const [decision, reason] = Array.isArray(said) ? said : [said, null];
        photos[i].decision = decision || null;
        photos[i].reason = reason || null;
      }
    } catch (err) {
      // Storage off (private mode): decisions live until the page closes; export still works.
    }
  }

  function saveLocal() {
    const changed = {};
    for (const photo of photos) {
      const was = fromLedger.get(photo.id);
      if (photo.decision !== was[0] || photo.reason !== was[1]) {
        changed[photo.id] = [photo.decision, photo.reason];
      }
    }
    try {
      window.localStorage.setItem(storageKey, JSON.stringify(changed));
    } catch (err) {
      // See loadSaved.
    }
  }

  function exportDecisions() {
    const list = [];
    for (const photo of photos) {
      const was = fromLedger.get(photo.id);
      if (photo.decision && (photo.decision !== was[0] || photo.reason !== was[1])) {
        const entry = { photo_id: photo.id, path: photo.path, sha256: photo.sha256,
          decision: photo.decision };
        if (photo.reason) entry.reason = photo.reason;
        list.push(entry);
      }
    }
    const doc = { format: "aihd-review-decisions", version: 1, manifest: data.manifest,
      exported_at: new Date().toISOString(), decisions: list };
    const blob = new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: "aihd-decisions.json" });
    document.body.append(link);
    link.click();
    link.remove();
  }

  // -- the sheet: listings, folders, cards ---------------------------------------------------

  function listingTitle(entry) {
    if (data.manifests.length < 2) return entry.name;
    return entry.name + " (" + data.manifests[entry.manifest].name + ")";
  }

  function folderTitle(folder, name) {
    if (!folder) return name;
    const about = [folder.tool, folder.space, folder.exterior ? "exterior" : ""];
    if (folder.enhancements.length) about.push(folder.enhancements.join(", "));
    return name + " — " + about.filter(Boolean).join(" · ");
  }

  function shell(photo, index) {
    const node = el("article", { class: "photo", "data-id": String(photo.id),
      "data-index": String(index), "data-state": photo.state, tabindex: "-1" });
    node.append(el("div", { class: "frame" }), el("div", { class: "meta" }));
    node.addEventListener("click", () => openLoupe(index));
    return node;
  }

  function fill(index) {
    if (filled.has(index)) return;
    filled.add(index);
    const photo = photos[index];
    const node = cards[index];
    const frame = el("div", { class: "frame" });
    const src = photo.after || photo.before;
    if (src) {
      frame.append(picture(src, "thumb", (photo.after ? "after: " : "before: ") + photo.name));
    }
    if (!photo.after) frame.append(el("span", { class: "badge" }, stateWords(photo)));
    const meta = el("div", { class: "meta" });
    meta.append(el("span", { class: "name", title: photo.path }, photo.name),
      el("span", { class: "verdict" }));
    node.replaceChildren(frame, meta);
    node.classList.add("filled");
    paint(index);
  }

  function paint(index) {
    const photo = photos[index];
    const node = cards[index];
    node.dataset.decision = photo.decision || "";
    node.dataset.state = photo.state;
    node.classList.toggle("saving", pending.has(photo.id));
    if (!filled.has(index)) return;
    let verdict = "";
    if (photo.decision === "approved") verdict = "Approved";
    else if (photo.decision === "rejected") {
      verdict = "Rejected" + (photo.reason ? ": " + photo.reason : "");
    } else if (photo.state === "completed") verdict = "To review";
    else verdict = photo.state === "failed" ? "Failed" : "Not collected";
    node.querySelector(".verdict").textContent = verdict;
  }

  function build() {
    main.replaceChildren();
    listingList.replaceChildren();
    cards = [];
    filled = new Set();
    indexById = new Map();
    listingViews = new Map();
    if (observer) observer.disconnect();
    const folders = new Map(data.folders.map((f) => [f.listing + "\u0000" + f.name, f]));
    for (const entry of data.listings) {
      const view = { entry: entry, indices: [], folderViews: new Map() };
      const section = el("section", { class: "listing", "data-listing": entry.key });
      view.section = section;
      const head = el("div", { class: "listing-head" });
      view.counts = el("span", { class: "listing-counts" });
      view.rest = el("button", { type: "button", class: "approve-rest" });
      view.rest.addEventListener("click", () => approveRest(entry.key));
      head.append(el("h2", {}, listingTitle(entry)), view.counts, view.rest);
      if (served) {
        view.deliver = el("button", { type: "button", class: "deliver" }, "Deliver this listing…");
        view.deliver.addEventListener("click", () => deliverListing(entry.key));
        head.append(view.deliver);
      } else {
        view.deliver = el("code", { class: "deliver" }, data.manifests[entry.manifest].deliver_command);
        head.append(view.deliver);
      }
      section.append(head);
      for (const name of entry.folders) {
        const folder = folders.get(entry.key + "\u0000" + name);
        const part = el("section", { class: "folder" });
        const grid = el("div", { class: "grid" });
        part.append(el("h3", {}, folderTitle(folder, name)), grid);
        section.append(part);
        view.folderViews.set(name, { section: part, grid: grid, indices: [] });
      }
      main.append(section);
      const item = el("li");
      const button = el("button", { type: "button", "data-listing": entry.key });
      view.side = el("span", { class: "listing-counts" });
      button.append(el("span", { class: "listing-name" }, listingTitle(entry)), view.side);
      button.addEventListener("click", () => jumpTo(entry.key));
      item.append(button);
      listingList.append(item);
      view.button = button;
      listingViews.set(entry.key, view);
    }
    photos.forEach((photo, index) => {
      indexById.set(photo.id, index);
      const view = listingViews.get(photo.listing);
      const part = view && view.folderViews.get(photo.folder);
      const node = shell(photo, index);
      cards.push(node);
      if (part) {
        part.grid.append(node);
        part.indices.push(index);
        view.indices.push(index);
      }
    });
    observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        fill(Number(entry.target.dataset.index));
        observer.unobserve(entry.target);
      }
    }, { rootMargin: "800px 0px" });
    for (const node of cards) observer.observe(node);
  }

  function matches(photo) {
    switch (filter) {
      case "unreviewed": return toReview(photo);
      case "approved": return photo.decision === "approved";
      case "rejected": return photo.decision === "rejected";
      case "failed": return photo.state === "failed";
      case "waiting": return photo.state !== "completed" && photo.state !== "failed";
      default: return true;
    }
  }

  function tally(photos_of) {
    const c = { review: 0, approved: 0, rejected: 0, failed: 0, waiting: 0, completed: 0 };
    for (const index of photos_of) {
      const photo = photos[index];
      if (photo.state === "completed") c.completed += 1;
      if (photo.decision === "approved") c.approved += 1;
      else if (photo.decision === "rejected") c.rejected += 1;
      else if (photo.state === "completed") c.review += 1;
      if (photo.state === "failed") c.failed += 1;
      else if (photo.state !== "completed") c.waiting += 1;
    }
    return c;
  }

  function refresh() {
    const total = { review: 0, approved: 0, rejected: 0, failed: 0 };
    let shown = 0;
    for (const view of listingViews.values()) {
      let inListing = 0;
      for (const part of view.folderViews.values()) {
        let inFolder = 0;
        for (const index of part.indices) {
          const show = matches(photos[index]);
          cards[index].hidden = !show;
          if (show) inFolder += 1;
        }
        part.section.hidden = inFolder === 0; // a filter hides the folders it empties
        inListing += inFolder;
      }
      view.section.hidden = inListing === 0;
      shown += inListing;
      const c = tally(view.indices);
      for (const key of Object.keys(total)) total[key] += c[key];
      view.counts.textContent = c.review + " to review · " + c.approved + " approved · "
        + c.rejected + " rejected · " + c.failed + " failed";
      view.side.textContent = view.indices.length
        ? c.review + " to review · " + c.approved + " ✓ · " + c.rejected + " ✗ · "
          + c.failed + " failed"
        : "no photos yet";
      view.button.dataset.todo = String(c.review);
      view.rest.hidden = c.review === 0;
      view.rest.textContent = "Approve the rest (" + c.review + ")";
      view.deliver.hidden = !(c.completed > 0 && c.review === 0 && c.approved > 0);
    }
    nothing.hidden = shown > 0;
    nothing.textContent = NOTHING[filter];
    counts.textContent = photos.length + " photos · " + total.review + " to review · "
      + total.approved + " approved · " + total.rejected + " rejected · " + total.failed
      + " failed";
    let made = 0;
    for (let i = 0; i < cards.length && made < FILL_AT_ONCE; i += 1) {
      if (!cards[i].hidden) {
        fill(i);
        made += 1;
      }
    }
  }

  // -- moving about --------------------------------------------------------------------------

  function select(index, scroll) {
    if (index < 0 || index >= cards.length) return;
    if (current >= 0 && cards[current]) cards[current].classList.remove("current");
    current = index;
    fill(index);
    cards[index].classList.add("current");
    for (const view of listingViews.values()) {
      view.button.toggleAttribute("aria-current", view.entry.key === photos[index].listing);
    }
    if (scroll) cards[index].scrollIntoView({ block: "nearest" });
    if (loupe.open) renderLoupe();
  }

  function move(step) {
    for (let i = current + step; i >= 0 && i < cards.length; i += step) {
      if (!cards[i].hidden) {
        select(i, true);
        return;
      }
    }
  }

  function nextToReview(from) {
    for (let k = 1; k <= photos.length; k += 1) {
      const i = (from + k) % photos.length;
      if (!cards[i].hidden && toReview(photos[i])) return i;
    }
    return -1;
  }

  function jumpTo(key) {
    const view = listingViews.get(key);
    if (!view) return;
    const shown = view.indices.filter((i) => !cards[i].hidden);
    const first = shown.find((i) => toReview(photos[i]));
    view.section.scrollIntoView({ block: "start" });
    if (first !== undefined || shown.length) select(first !== undefined ? first : shown[0], false);
  }

  // -- deciding ------------------------------------------------------------------------------

  async function decide(indices, decision, reason) {
    const chosen = indices.filter((i) => photos[i].state === "completed");
    if (!chosen.length) {
      if (indices.length === 1) toast("Only a collected result can be approved or rejected.");
      return false;
    }
    const before = chosen.map((i) => [photos[i].decision, photos[i].reason]);
    for (const i of chosen) {
      photos[i].decision = decision;
      photos[i].reason = decision === "rejected" && reason ? reason : null;
    }
    if (!served) {
      saveLocal();
      chosen.forEach(paint);
      refresh();
      if (loupe.open) renderLoupe();
      return true;
    }
    const ids = chosen.map((i) => photos[i].id);
    ids.forEach((id) => pending.add(id));
    markSaving();
    chosen.forEach(paint);
    refresh();
    if (loupe.open) renderLoupe();
    try {
      await post("api/decisions", { photo_ids: ids, decision: decision,
        reason: decision === "rejected" && reason ? reason : null });
      return true;
    } catch (err) {
      chosen.forEach((i, k) => {
        photos[i].decision = before[k][0];
        photos[i].reason = before[k][1];
      });
      toast("Not saved: " + err.message, true);
      return false;
    } finally {
      ids.forEach((id) => pending.delete(id));
      markSaving();
      chosen.forEach(paint);
      refresh();
      if (loupe.open) renderLoupe();
    }
  }

  function decideAndMove(decision, reason) {
    const from = current;
    if (photos[from].state !== "completed") {
      toast("Only a collected result can be approved or rejected.");
      return;
    }
    decide([from], decision, reason);
    const next = nextToReview(from);
    if (next >= 0) select(next, true);
    else toast("Every collected photo shown here is decided.");
  }

  function askReason(index) {
    const photo = photos[index];
    const input = byId("reason-text");
    byId("reason-photo").textContent = photo.name;
    input.value = photo.reason || "";
    return new Promise((resolve) => {
      let answered = false;
      const answer = (value) => {
        if (answered) return;
        answered = true;
        reasonDialog.removeEventListener("keydown", onKey);
        reasonDialog.removeEventListener("close", onClose);
        input.blur(); // the keys are the desk's again at once
        if (reasonDialog.open) reasonDialog.close();
        resolve(value);
      };
      const onKey = (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          answer(input.value.trim());
        } else if (document.activeElement !== input && /^[1-9]$/.test(event.key)) {
          const chosen = REASONS[Number(event.key) - 1];
          if (chosen) {
            event.preventDefault();
            answer(chosen);
          }
        }
        event.stopPropagation();
      };
      const onClose = () => answer(null);
      const list = byId("reason-choices");
      list.replaceChildren();
      REASONS.forEach((text, k) => {
        const button = el("button", { type: "button" }, (k + 1) + ". " + text);
        button.addEventListener("click", () => answer(text));
        list.append(el("li"));
        list.lastChild.append(button);
      });
      byId("reason-save").onclick = () => answer(input.value.trim());
      byId("reason-cancel").onclick = () => answer(null);
      reasonDialog.addEventListener("keydown", onKey);
      reasonDialog.addEventListener("close", onClose);
      reasonDialog.showModal();
      list.querySelector("button").focus();
    });
  }

  async function rejectWithReason(index) {
    if (photos[index].state !== "completed") {
      toast("Only a collected result can be approved or rejected.");
      return;
    }
    const reason = await askReason(index);
    if (reason === null) return;
    select(index, false);
    decideAndMove("rejected", reason);
  }

  function ask(title, text, code, ok, cancel) {
    byId("ask-title").textContent = title;
    byId("ask-text").textContent = text;
    byId("ask-code").textContent = code || "";
    byId("ask-code").hidden = !code;
    const okButton = byId("ask-ok");
    const cancelButton = byId("ask-cancel");
    okButton.textContent = ok;
    cancelButton.hidden = cancel === false;
    return new Promise((resolve) => {
      let answered = false;
      const answer = (value) => {
        if (answered) return;
        answered = true;
        askDialog.removeEventListener("close", onClose);
        if (askDialog.open) askDialog.close();
        for (const id of ["ask-title", "ask-text", "ask-code"]) byId(id).textContent = "";
        resolve(value);
      };
      const onClose = () => answer(false);
      okButton.onclick = () => answer(true);
      cancelButton.onclick = () => answer(false);
      askDialog.addEventListener("close", onClose);
      askDialog.showModal();
      (cancel === false ? okButton : cancelButton).focus();
    });
  }

  async function approveRest(key) {
    const view = listingViews.get(key);
    const rest = view.indices.filter((i) => toReview(photos[i]));
    if (!rest.length) {
      toast("Every collected photo of " + view.entry.name + " is decided.");
      return;
    }
    const yes = await ask("Approve the rest of " + view.entry.name + "?",
      rest.length + " collected photos not decided yet will be approved.", "",
      "Approve " + rest.length);
    if (yes && await decide(rest, "approved")) {
      toast(rest.length + " photos of " + view.entry.name + " approved.");
    }
  }

  async function orderAgain(index) {
    const photo = photos[index];
    let plan;
    try {
      plan = await post("api/reorder", { photo_id: photo.id });
    } catch (err) {
      toast("Cannot order it again: " + err.message, true);
      return;
    }
    if (!plan.orders) {
      toast(plan.lines.join(" "));
      return;
    }
    const yes = await ask("Order " + photo.name + " again?",
      plan.lines.join(" ") + ". It costs " + credits(plan.orders) + "; " + plan.then
        + " orders it. The same as:",
      plan.command, "Order again (" + credits(plan.orders) + ")");
    if (!yes) return;
    try {
      await post("api/reorder", { photo_id: photo.id, go: true, order_id: plan.order_id });
    } catch (err) {
      toast("Not ordered again: " + err.message, true);
      return;
    }
    photo.state = "pending";
    photo.decision = null;
    photo.reason = null;
    photo.order_id = null;
    paint(index);
    refresh();
    if (loupe.open) renderLoupe();
    toast(photo.name + " will be ordered again (" + credits(plan.orders) + ") by " + plan.then
      + ".");
  }

  async function deliverListing(key) {
    const view = listingViews.get(key);
    const c = tally(view.indices);
    const manifest = data.manifests[view.entry.manifest];
    let text = c.approved + " approved photos, sized for the " + data.delivery_profile
      + " profile, into the delivery folder beside " + manifest.name + ", with a disclosure "
      + "file; " + c.rejected + " rejected ones are left out.";
    if (c.waiting) text += " " + c.waiting + " photos not collected yet are left out too.";
    const yes = await ask("Deliver " + view.entry.name + "?", text + " What `aihd deliver` does "
      + "for each listing:", manifest.deliver_command, "Deliver");
    if (!yes) return;
    try {
      const report = await post("api/deliver", { listing: key });
      const lines = report.delivered.map((d) => d.photos + " photos into " + d.into);
      toast("Delivered " + (lines.join("; ") || "nothing") + ".");
    } catch (err) {
      toast("Not delivered: " + err.message, true);
    }
  }

  // -- the loupe: full size, before / after ---------------------------------------------------

  function openLoupe(index) {
    select(index, true);
    renderLoupe();
    if (!loupe.open) loupe.showModal();
  }

  function setImage(img, src) {
    if (src) {
      if (img.getAttribute("src") !== src) img.setAttribute("src", src);
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
  }

  function renderLoupe() {
    if (current < 0) return;
    const photo = photos[current];
    const compare = byId("loupe-compare");
    setImage(byId("loupe-after"), photo.result_url);
    setImage(byId("loupe-before"), photo.original_url);
    byId("loupe-after").alt = "after: " + photo.name;
    byId("loupe-before").alt = "before: " + photo.name;
    compare.classList.toggle("single", !photo.result_url);
    const waiting = byId("loupe-waiting");
    waiting.hidden = Boolean(photo.result_url);
    waiting.textContent = photo.result_url ? "" : stateWords(photo) + (photo.state === "failed"
      ? "" : " (" + manifestOf(photo).collect_command + ")");
    const view = listingViews.get(photo.listing);
    byId("loupe-name").textContent = photo.name;
    byId("loupe-where").textContent = (view ? listingTitle(view.entry) + " / " : "") + photo.folder;
    const toggles = photo.enhancements.length ? photo.enhancements.join(", ") : "no toggles";
    byId("loupe-words").textContent = [photo.tool, photo.space, toggles].filter(Boolean).join(" · ");
    byId("loupe-order").textContent = "order " + (photo.order_id || "none") + " · "
      + credits(photo.cost);
    byId("loupe-state").textContent = "state: " + stateWords(photo);
    byId("loupe-error").hidden = true;
    let verdict = photo.state === "completed" ? "not decided yet" : "";
    if (photo.decision === "approved") verdict = "Approved";
    if (photo.decision === "rejected") {
      verdict = "Rejected" + (photo.reason ? ": " + photo.reason : " (no reason given)");
    }
    byId("loupe-verdict").textContent = verdict;
    byId("loupe-verdict").dataset.decision = photo.decision || "";
    const rejected = photo.decision === "rejected";
    byId("loupe-hint").textContent = rejected
      ? (served ? "Not delivered. “Order again” orders it again, for a credit."
        : "Not delivered. To order it again (1 credit): " + photo.reorder_command)
      : "";
    const decidable = photo.state === "completed";
    for (const id of ["loupe-approve", "loupe-reject", "loupe-reason"]) byId(id).hidden = !decidable;
    byId("loupe-undecide").hidden = !photo.decision;
    if (served) byId("loupe-reorder").hidden = !(rejected || photo.state === "failed");
    byId("loupe-files").textContent = "original: " + photo.path;
  }

  function nudge(step) {
    const slider = byId("loupe-slider");
    slider.value = String(Math.min(100, Math.max(0, Number(slider.value) + step)));
    byId("loupe-compare").style.setProperty("--pos", slider.value + "%");
  }

  function wireLoupe() {
    const slider = byId("loupe-slider");
    slider.addEventListener("input", () => {
      byId("loupe-compare").style.setProperty("--pos", slider.value + "%");
    });
    byId("loupe-approve").addEventListener("click", () => decideAndMove("approved"));
    byId("loupe-reject").addEventListener("click", () => decideAndMove("rejected"));
    byId("loupe-reason").addEventListener("click", () => rejectWithReason(current));
    byId("loupe-undecide").addEventListener("click", () => decide([current], null));
    byId("loupe-previous").addEventListener("click", () => move(-1));
    byId("loupe-next").addEventListener("click", () => move(1));
    byId("loupe-close").addEventListener("click", () => loupe.close());
    if (served) byId("loupe-reorder").addEventListener("click", () => orderAgain(current));
  }

  // -- keys ----------------------------------------------------------------------------------

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (reasonDialog.open || askDialog.open) return;
    const target = event.target;
    // Typing in a field, unless the field's dialog is closed: Chrome may leave the focus on
    // a hidden field until its next rendering, and a key pressed then is the desk's.
    const typing = target && (target.tagName === "TEXTAREA"
      || (target.tagName === "INPUT" && target.type === "text"))
      && !target.closest("dialog:not([open])");
    if (typing) return;
    const key = event.key;
    if (key === "ArrowRight" || key === "ArrowDown" || key === "j") move(1);
    else if (key === "ArrowLeft" || key === "ArrowUp" || key === "k") move(-1);
    else if (current < 0) return;
    else if (key === "a") decideAndMove("approved");
    else if (key === "r") decideAndMove("rejected");
    else if (key === "R") rejectWithReason(current);
    else if (key === "u") decide([current], null);
    else if (key === "A") approveRest(photos[current].listing);
    else if (key === "z" || (key === "Enter" && target.tagName !== "BUTTON")) {
      if (loupe.open) loupe.close();
      else openLoupe(current);
    } else if (loupe.open && (key === "[" || key === "]")) nudge(key === "[" ? -10 : 10);
    else return;
    event.preventDefault();
  }

  // -- served: live changes ------------------------------------------------------------------

  function showProgress(p) {
    const progress = byId("progress");
    if (!progress) return;
    progress.textContent = "Today: " + p.ordered_today + " ordered · " + p.waiting
      + " waiting for results · " + p.collected + " collected · " + p.failed + " failed"
      + (p.to_order ? " · " + p.to_order + " to order" : "");
  }

  function applyChanges(change) {
    const unknown = change.changed.some((p) => !indexById.has(p.id));
    if (change.gone.length || unknown) {
      load();
      return;
    }
    for (const fresh of change.changed) {
      const index = indexById.get(fresh.id);
      const old = photos[index];
      if (fresh.listing !== old.listing || fresh.folder !== old.folder) {
        load();
        return;
      }
      if (pending.has(fresh.id)) {
        fresh.decision = old.decision; // ours is on its way: it is the latest word
        fresh.reason = old.reason;
      }
      const looks = fresh.after !== old.after || fresh.before !== old.before;
      photos[index] = fresh;
      if (looks && filled.has(index)) {
        filled.delete(index);
        fill(index);
      } else {
        paint(index);
      }
    }
    refresh();
    if (loupe.open) renderLoupe();
  }

  function listen() {
    const source = new EventSource("api/events");
    source.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
    source.addEventListener("photos", (e) => applyChanges(JSON.parse(e.data)));
    source.addEventListener("trouble", (e) => {
      toast("The ledger cannot be read now: " + JSON.parse(e.data).error, true);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        toast("Lost the desk: reload this page (log in again if the desk restarted).", true);
      }
    });
  }

  async function load() {
    let answer;
    try {
      answer = await fetch("api/state", { credentials: "same-origin" });
    } catch (err) {
      toast("Cannot reach the desk: " + err.message, true);
      return;
    }
    if (!answer.ok) {
      toast("The desk answered " + answer.status + ": reload the page, or log in again.", true);
      return;
    }
    const keep = current >= 0 && photos[current] ? photos[current].id : null;
    start(await answer.json());
    if (keep !== null && indexById.has(keep)) select(indexById.get(keep), false);
  }

  // -- start ---------------------------------------------------------------------------------

  function start(sheet) {
    data = sheet;
    photos = data.photos;
    current = -1;
    build();
    if (!served) {
      storageKey = "aihd-review:" + data.ledger + ":" + data.manifest + ":" + data.generated_at;
      for (const photo of photos) fromLedger.set(photo.id, [photo.decision, photo.reason]);
      loadSaved();
    }
    refresh();
    if (served) showProgress(data.progress);
    const first = nextToReview(-1);
    if (cards.length) select(first >= 0 ? first : 0, false);
  }

  function wire() {
    for (const button of document.querySelectorAll("#filters button")) {
      button.addEventListener("click", () => {
        filter = button.dataset.filter;
        for (const other of document.querySelectorAll("#filters button")) {
          other.setAttribute("aria-pressed", String(other === button));
        }
        refresh();
        if (current >= 0 && cards[current].hidden) {
          const first = cards.findIndex((card) => !card.hidden);
          if (first >= 0) select(first, true);
        }
      });
    }
    const keysButton = byId("keys-button");
    keysButton.addEventListener("click", () => {
      const keys = byId("keys");
      keys.hidden = !keys.hidden;
      keysButton.setAttribute("aria-expanded", String(!keys.hidden));
    });
    if (served) {
      byId("another-browser").addEventListener("click", async () => {
        try {
          const link = await post("api/login-links", {});
          await ask("Let another browser in", "Open this link in the other browser. It works "
            + "once; until then, anyone who has it can use the desk.", link.url, "Done", false);
        } catch (err) {
          toast("No link made: " + err.message, true);
        }
      });
    } else {
      byId("export").addEventListener("click", exportDecisions);
    }
    wireLoupe();
    document.addEventListener("keydown", onKey);
  }

  async function begin() {
    wire();
    markSaving();
    if (served) {
      await load();
      listen();
    } else {
      start(window.AIHD_REVIEW);
    }
    const loading = byId("loading");
    if (loading) loading.remove();
    document.body.dataset.ready = "true";
  }

  begin();
})();
