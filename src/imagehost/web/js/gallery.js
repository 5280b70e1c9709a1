// The Images tab: images newest first as a table or a grid, searched by name on the server,
// loading more on scroll, kept up to date by cheap conditional polls (If-None-Match → 304)
// while it is shown; select many to delete them or make an album of them.

import { albumEntries, albumResult, makeAlbum } from "./albums.js";
import { ApiError, deleteImage, fetchImages } from "./api.js";
import { announce, copyButton, el, expiryNote } from "./dom.js";
import { countOf, humanSize, localDate, sameOriginPath } from "./format.js";
import { albumFailure, deleteFailure, deleteReason, listingFailure } from "./messages.js";
import {
  adminKey,
  deleteToken,
  galleryView,
  mayDelete,
  setDeleteToken,
  setGalleryView,
} from "./storage.js";

const PAGE_SIZE = 50;
const POLL_MS = 3000;
const SEARCH_DELAY_MS = 300;
const PARALLEL_DELETES = 4;

function displayName(image) {
  return image.original_name || image.filename;
}

/** Runs `task` over `items`, at most `limit` at once; resolves to the results in order. */
async function eachLimited(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await task(items[index]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Opens `dialog` modally; resolves to the returnValue it closed with ("" when dismissed). */
function runDialog(dialog, buttons, focus) {
  return new Promise((resolve) => {
    const handlers = buttons.map(([button, value]) => {
      const handler = () => dialog.close(value);
      button.addEventListener("click", handler);
      return [button, handler];
    });
    dialog.addEventListener(
      "close",
      () => {
        for (const [button, handler] of handlers) button.removeEventListener("click", handler);
        resolve(dialog.returnValue);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    focus.focus();
  });
}

/** Asks before deleting, with the page's <dialog> (or window.confirm where there is none). */
function confirmDelete(title, text) {
  const dialog = document.getElementById("confirm-delete");
  if (!dialog || typeof dialog.showModal !== "function") {
    return Promise.resolve(window.confirm(`${title} ${text}`));
  }
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const ok = document.getElementById("confirm-ok");
  const cancel = document.getElementById("confirm-cancel");
  return runDialog(
    dialog,
    [
      [ok, "delete"],
      [cancel, "cancel"],
    ],
    cancel,
  ).then((value) => value === "delete");
}

/**
 * Asks for an album's title, naming the images that cannot be in it. Resolves to the title
 * (maybe "") or null when cancelled.
 */
function askAlbum(count, missing) {
  const dialog = document.getElementById("album-dialog");
  const ok = document.getElementById("album-ok");
  const cancel = document.getElementById("album-cancel");
  const title = document.getElementById("album-title");
  const titleField = document.getElementById("album-title-field");
  const text = document.getElementById("album-dialog-text");
  const list = document.getElementById("album-missing");
  const addable = count - missing.length;
  document.getElementById("album-dialog-title").textContent = addable
    ? `Make an album of ${countOf(addable)}?`
    : "No album can be made";
  if (missing.length) {
    text.textContent =
      `${missing.length === count ? "None" : countOf(missing.length)} of the selected can't be added:` +
      ` this browser holds no delete token for ${missing.length === 1 ? "it" : "them"}, and no admin key.`;
  } else {
    text.textContent = "The album gets a link of its own; its images stay where they are.";
  }
  list.replaceChildren(...missing.map((image) => el("li", { text: displayName(image) })));
  list.hidden = !missing.length;
  ok.hidden = !addable;
  titleField.hidden = !addable;
  cancel.textContent = addable ? "Cancel" : "Close";
  title.value = "";
  return runDialog(
    dialog,
    [
      [ok, "make"],
      [cancel, "cancel"],
    ],
    addable ? title : cancel,
  ).then((value) => (value === "make" ? title.value : null));
}

export class Gallery {
  constructor(parts) {
    Object.assign(this, parts);
    // table, body, empty, noMatch, message, count, sentinel, loading, loadMore, search,
    // viewButtons, selectionBar, selectAll, selectionCount, deleteSelected, albumSelected,
    // albumMade
    this.rows = new Map(); // filename → { image, row, box }
    this.query = "";
    this.etag = "";
    this.next = "";
    this.total = null;
    this.loaded = false;
    this.busy = false;
    this.generation = 0; // a new search or reload makes answers to older requests stale
    this.active = false;
    this.blocked = false; // listing refused (401/403): wait for a key instead of polling
    this.failed = false;
    this.working = false; // a "Delete selected" or "Make album" is under way

    this.loadMore.addEventListener("click", () => this.loadMorePages());
    if ("IntersectionObserver" in window) {
      this.observer = new IntersectionObserver(
        (entries) => {
          if (entries.some((entry) => entry.isIntersecting)) this.loadMorePages();
        },
        { rootMargin: "0px 0px 400px 0px" },
      );
      this.observer.observe(this.sentinel);
    }
    window.setInterval(() => this.poll(), POLL_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.poll();
    });

    let searchTimer = 0;
    this.search.addEventListener("input", () => {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(() => this.setQuery(this.search.value), SEARCH_DELAY_MS);
    });
    this.search.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      window.clearTimeout(searchTimer);
      this.setQuery(this.search.value);
    });

    for (const button of this.viewButtons) {
      button.addEventListener("click", () => this.setView(button.dataset.view, true));
    }
    this.setView(galleryView(), false);

    this.selectAll.addEventListener("change", () => {
      for (const entry of this.rows.values()) entry.box.checked = this.selectAll.checked;
      this.refreshSelection();
    });
    this.deleteSelected.addEventListener("click", () => this.removeSelected());
    this.albumSelected.addEventListener("click", () => this.albumFromSelection());
  }

  /** The tab was shown (true) or hidden (false). */
  setActive(active) {
    this.active = active;
    if (!active) return;
    if (this.loaded) this.poll();
    else this.reload();
  }

  /** The admin key changed: permissions and maybe the right to list are different now. */
  keyChanged() {
    this.blocked = false;
    for (const { image, row } of this.rows.values()) this.renderActions(image, row);
    if (this.active) this.reload();
    else this.loaded = false;
  }

  /** "table" or "grid"; remembered in this browser when the person chose it. */
  setView(view, remember) {
    const grid = view === "grid";
    this.table.dataset.view = grid ? "grid" : "table";
    for (const button of this.viewButtons) {
      button.setAttribute("aria-pressed", String(button.dataset.view === this.table.dataset.view));
    }
    if (remember) setGalleryView(this.table.dataset.view);
    this.fillViewport();
  }

  firstPage() {
    const q = this.query ? `&q=${encodeURIComponent(this.query)}` : "";
    return `/api/upload/?limit=${PAGE_SIZE}${q}`;
  }

  /** A new search: the first page of its matches replaces what is shown. */
  setQuery(raw) {
    const query = raw.trim();
    if (query === this.query) return;
    this.query = query;
    this.loaded = false;
    if (this.active) this.reload();
  }

  matches(image) {
    return !this.query || displayName(image).toLowerCase().includes(this.query.toLowerCase());
  }

  async reload() {
    this.generation += 1;
    await this.fetchPage(this.firstPage(), (page) => {
      const keep = new Set(this.selectedNames());
      this.body.replaceChildren();
      this.rows.clear();
      for (const image of page.items) this.appendRow(image, keep.has(image.filename));
      this.etag = page.etag;
      this.total = page.total;
      this.loaded = true;
    });
  }

  /** The next page, from the Link header of the last one. */
  async loadMorePages() {
    if (!this.active || !this.loaded || !this.next || this.busy) return;
    await this.fetchPage(sameOriginPath(this.next), (page) => {
      for (const image of page.items) {
        if (!this.rows.has(image.filename)) this.appendRow(image);
      }
      if (page.total !== null) this.total = page.total;
    });
  }

  /** Fetch one page of the listing, apply it, and keep the busy/loading state and errors. */
  async fetchPage(path, apply) {
    const generation = this.generation;
    this.busy = true;
    this.loading.hidden = false;
    try {
      const page = await fetchImages(path);
      if (generation !== this.generation) return;
      if (this.failed) this.clearMessage();
      apply(page);
      this.next = page.next;
    } catch (error) {
      if (generation === this.generation) this.showListingError(error);
    } finally {
      if (generation === this.generation) {
        this.busy = false;
        this.loading.hidden = true;
        this.refresh();
      }
    }
    if (generation === this.generation) this.fillViewport();
  }

  /** Keeps loading while the sentinel is still on screen (a tall window, short rows). */
  fillViewport() {
    if (!this.next || !this.active) return;
    const box = this.sentinel.getBoundingClientRect();
    if (box.top < window.innerHeight + 400) {
      window.requestAnimationFrame(() => this.loadMorePages());
    }
  }

  /** Asks whether the first page changed; merges what did (new rows on top, vanished gone). */
  async poll() {
    if (!this.active || this.busy || this.blocked || document.visibilityState !== "visible") return;
    if (!this.loaded) {
      this.reload();
      return;
    }
    const generation = this.generation;
    this.busy = true;
    try {
      const page = await fetchImages(this.firstPage(), this.etag);
      if (generation !== this.generation) return;
      if (!page.notModified) {
        this.merge(page);
        this.etag = page.etag;
        if (page.total !== null) this.total = page.total;
      }
      if (this.failed) this.clearMessage();
    } catch (error) {
      if (generation === this.generation) this.showListingError(error);
    } finally {
      if (generation === this.generation) {
        this.busy = false;
        this.refresh();
      }
    }
  }

  merge(page) {
    const present = new Set(page.items.map((image) => image.filename));
    // Rows as new as the page's oldest belong to the first page: missing from it means deleted.
    // A page shorter than the limit is the whole collection.
    const whole = page.items.length < PAGE_SIZE;
    const oldest = page.items.length ? Date.parse(page.items[page.items.length - 1].created_at) : 0;
    for (const [filename, { image, row }] of [...this.rows]) {
      if (present.has(filename)) continue;
      if (whole || Date.parse(image.created_at) >= oldest) {
        row.remove();
        this.rows.delete(filename);
      }
    }
    if (whole && !page.next) this.next = "";
    let after = null; // the row the next new one goes below
    for (const image of page.items) {
      const known = this.rows.get(image.filename);
      if (known) {
        after = known.row;
        continue;
      }
      const entry = this.buildRow(image);
      if (after) after.after(entry.row);
      else this.body.prepend(entry.row);
      this.rows.set(image.filename, entry);
      after = entry.row;
    }
  }

  /** A new upload from this page: shown at once, without waiting for the next poll. */
  addUploaded(image) {
    if (!this.loaded || this.rows.has(image.filename) || !this.matches(image)) return;
    const entry = this.buildRow(image);
    this.body.prepend(entry.row);
    this.rows.set(image.filename, entry);
    if (this.total !== null) this.total += 1;
    this.refresh();
  }

  appendRow(image, selected = false) {
    const entry = this.buildRow(image);
    entry.box.checked = selected;
    this.body.append(entry.row);
    this.rows.set(image.filename, entry);
  }

  buildRow(image) {
    const name = displayName(image);
    const thumb = el("img", {
      class: "thumb",
      alt: "",
      width: 64,
      height: 64,
      loading: "lazy",
      decoding: "async",
    });
    thumb.src = sameOriginPath(image.thumbnail_url || image.url);
    const box = el("input", { type: "checkbox", class: "select-box", "aria-label": `Select ${name}` });
    box.addEventListener("change", () => this.refreshSelection());
    const links = [this.linkLine("Image", image.url, `URL of ${name}`, "image-url")];
    if (image.share_url) {
      links.push(this.linkLine("Share", image.share_url, `share link of ${name}`, "share-url"));
    }
    const dimensions = image.width && image.height ? `${image.width} × ${image.height}` : "—";
    const row = el(
      "tr",
      { "data-filename": image.filename },
      el("td", { class: "cell-select" }, box),
      el("td", { class: "cell-thumb" }, thumb),
      el(
        "td",
        { class: "cell-name", "data-label": "Name" },
        el("span", { class: "image-name", text: name }),
      ),
      el("td", { class: "cell-url", "data-label": "Links" }, ...links),
      el("td", { class: "cell-size", "data-label": "Size", text: humanSize(image.size) }),
      el("td", { class: "cell-dims", "data-label": "Dimensions", text: dimensions }),
      el(
        "td",
        { class: "cell-date", "data-label": "Uploaded" },
        el("time", { datetime: image.created_at, text: localDate(image.created_at) }),
      ),
      el(
        "td",
        { class: `cell-expires${image.expires_at ? "" : " is-kept"}`, "data-label": "Expires" },
        image.expires_at
          ? expiryNote(image.expires_at)
          : el("span", { class: "expires expires-never", text: "Never" }),
      ),
      el("td", { class: "cell-actions" }),
    );
    this.renderActions(image, row);
    return { image, row, box };
  }

  linkLine(label, url, what, kind) {
    return el(
      "div",
      { class: "url-cell" },
      el("span", { class: "url-kind", "aria-hidden": "true", text: label }),
      el("a", { class: `image-url ${kind}`, href: url, target: "_blank", rel: "noopener", text: url }),
      copyButton(() => url, what),
    );
  }

  renderActions(image, row) {
    const cell = row.querySelector(".cell-actions");
    if (!mayDelete(image.filename)) {
      cell.replaceChildren();
      return;
    }
    const button = el(
      "button",
      { type: "button", class: "icon-button delete-button", "aria-label": `Delete ${displayName(image)}` },
      el("span", { class: "icon icon-trash", "aria-hidden": "true" }),
    );
    button.addEventListener("click", () => this.remove(image, button));
    cell.replaceChildren(button);
  }

  /** Deletes one image with this browser's token, else the admin key. Resolves to null when
   * it is gone (deleted now or already), or the ApiError that kept it. */
  async deleteOne(image) {
    try {
      try {
        await deleteImage(image.filename, deleteToken(image.filename));
      } catch (error) {
        // A stale token, but the admin key may still do it.
        const tokenRefused = error.code === "forbidden" || error.code === "auth_required";
        if (!(tokenRefused && deleteToken(image.filename) && adminKey())) throw error;
        await deleteImage(image.filename, "");
      }
    } catch (error) {
      const known = error instanceof ApiError ? error : new ApiError(0, "network", "");
      if (known.code !== "not_found") return known;
      // Already gone (deleted elsewhere): the row goes too.
    }
    setDeleteToken(image.filename, null);
    return null;
  }

  async remove(image, button) {
    const name = displayName(image);
    const asked = confirmDelete(
      "Delete this image?",
      `“${name}” will be removed from this server and its links will stop working.`,
    );
    if (!(await asked)) return;
    button.disabled = true;
    const error = await this.deleteOne(image);
    if (error) {
      button.disabled = false;
      this.showMessage(deleteFailure(error, name), "error");
      button.focus();
      return;
    }
    this.dropRow(image.filename, true);
    this.clearMessage();
    announce(`${name} deleted`);
  }

  /** "Delete selected": one confirmation for all, then each image's own outcome. */
  async removeSelected() {
    const chosen = this.selectedImages();
    if (!chosen.length || this.working) return;
    const unowned = chosen.filter((image) => !mayDelete(image.filename)).length;
    const title = chosen.length === 1 ? "Delete this image?" : `Delete ${countOf(chosen.length)}?`;
    let text =
      chosen.length === 1
        ? `“${displayName(chosen[0])}” will be removed from this server and its links will stop working.`
        : "They will be removed from this server and their links will stop working.";
    if (unowned) {
      let which = countOf(unowned);
      if (unowned === chosen.length) which = unowned === 1 ? "it" : "any of them";
      const refusal = unowned === 1 ? "that one" : "those";
      text += ` This browser holds no delete token for ${which}: the server will likely refuse ${refusal}.`;
    }
    if (!(await confirmDelete(title, text))) return;
    this.setWorking(true);
    this.clearRowErrors();
    this.showMessage(`Deleting ${countOf(chosen.length)}…`, "info");
    const errors = await eachLimited(chosen, PARALLEL_DELETES, (image) => this.deleteOne(image));
    let deleted = 0;
    chosen.forEach((image, index) => {
      const error = errors[index];
      if (error) this.markRow(image.filename, deleteReason(error));
      else {
        deleted += 1;
        this.dropRow(image.filename, false);
      }
    });
    this.setWorking(false);
    const kept = chosen.length - deleted;
    const summary = kept
      ? `${countOf(deleted)} deleted; ${countOf(kept)} not deleted (marked below, still selected).`
      : `${countOf(deleted)} deleted.`;
    this.showMessage(summary, kept ? "error" : "success");
    announce(summary);
    this.refreshSelection();
    this.selectAll.focus();
  }

  /** "Make album" of the selection, in the order shown, naming the images it can't take. */
  async albumFromSelection() {
    const chosen = this.selectedImages();
    if (!chosen.length || this.working) return;
    const { entries, missing } = albumEntries(chosen);
    const title = await askAlbum(chosen.length, missing);
    if (title === null || !entries.length) return;
    this.setWorking(true);
    try {
      const album = await makeAlbum(entries, title);
      const dismiss = el("button", {
        type: "button",
        class: "button button-secondary button-small",
        text: "Dismiss",
      });
      dismiss.addEventListener("click", () => {
        this.albumMade.hidden = true;
        this.albumMade.replaceChildren();
        this.albumSelected.focus();
      });
      this.albumMade.replaceChildren(albumResult(album), dismiss);
      this.albumMade.hidden = false;
      this.clearMessage();
      announce(`Album of ${countOf(album.count)} made`);
      const field = this.albumMade.querySelector("input");
      if (field) field.focus();
    } catch (error) {
      this.showMessage(albumFailure(error), "error");
    } finally {
      this.setWorking(false);
    }
  }

  setWorking(working) {
    this.working = working;
    this.refreshSelection();
  }

  /** The selected images, in the order shown. */
  selectedImages() {
    const chosen = [];
    for (const row of this.body.children) {
      const entry = this.rows.get(row.dataset.filename);
      if (entry && entry.box.checked) chosen.push(entry.image);
    }
    return chosen;
  }

  selectedNames() {
    return this.selectedImages().map((image) => image.filename);
  }

  markRow(filename, reason) {
    const entry = this.rows.get(filename);
    if (!entry) return;
    entry.row.classList.add("has-error");
    entry.row.querySelector(".cell-name").append(el("p", { class: "row-error", text: reason }));
  }

  clearRowErrors() {
    for (const note of this.body.querySelectorAll(".row-error")) note.remove();
    for (const row of this.body.querySelectorAll("tr.has-error")) row.classList.remove("has-error");
  }

  dropRow(filename, moveFocus) {
    const entry = this.rows.get(filename);
    if (!entry) return;
    const neighbour = entry.row.nextElementSibling || entry.row.previousElementSibling;
    entry.row.remove();
    this.rows.delete(filename);
    if (this.total !== null) this.total = Math.max(0, this.total - 1);
    this.etag = ""; // the next poll fetches the first page again
    if (moveFocus) {
      const focusTarget = neighbour && neighbour.querySelector("button.delete-button, button");
      if (focusTarget) focusTarget.focus();
      else document.getElementById("panel-images").focus();
    }
    this.refresh();
  }

  showListingError(error) {
    const refused = error.code === "auth_required" || error.code === "forbidden";
    this.blocked = refused;
    this.failed = true;
    this.showMessage(listingFailure(error), refused ? "warning" : "error");
  }

  showMessage(text, kind) {
    this.message.textContent = text;
    this.message.className = `notice notice-${kind}`;
    this.message.hidden = false;
  }

  clearMessage() {
    this.failed = false;
    this.message.hidden = true;
    this.message.textContent = "";
  }

  /** The selection's count, "select all shown" and the buttons that act on the selection. */
  refreshSelection() {
    const boxes = [...this.rows.values()].map((entry) => entry.box);
    const selected = boxes.filter((box) => box.checked).length;
    this.selectAll.checked = selected > 0 && selected === boxes.length;
    this.selectAll.indeterminate = selected > 0 && selected < boxes.length;
    // A live region: rewritten only when it changes, or polls would make it speak again.
    const said = selected ? `${selected} selected` : "None selected";
    if (this.selectionCount.textContent !== said) this.selectionCount.textContent = said;
    this.deleteSelected.disabled = !selected || this.working;
    this.albumSelected.disabled = !selected || this.working;
    this.selectionBar.classList.toggle("has-selection", selected > 0);
  }

  /** Table, empty states, count and the "Load more" button follow the current rows. */
  refresh() {
    const hasRows = this.rows.size > 0;
    this.table.hidden = !hasRows;
    this.selectionBar.hidden = !hasRows;
    this.empty.hidden = hasRows || !this.loaded || this.blocked || Boolean(this.query);
    this.noMatch.hidden = hasRows || !this.loaded || this.blocked || !this.query;
    if (!this.noMatch.hidden) this.noMatch.textContent = `No image names contain “${this.query}”.`;
    const total = this.total ?? this.rows.size;
    let count = "";
    if (this.loaded && this.query) count = countOf(total, "match", "matches");
    else if (this.loaded && hasRows) count = countOf(total);
    if (this.count.textContent !== count) this.count.textContent = count;
    this.loadMore.hidden = !(this.loaded && this.next);
    this.refreshSelection();
  }
}
