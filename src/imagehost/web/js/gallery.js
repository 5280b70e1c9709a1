// The Images tab: the table of images, newest first, loading more on scroll, kept up to date by
// cheap conditional polls (If-None-Match → 304) while it is shown, with delete where allowed.

import { ApiError, deleteImage, fetchImages } from "./api.js";
import { announce, copyButton, el } from "./dom.js";
import { humanSize, localDate, sameOriginPath } from "./format.js";
import { deleteFailure, listingFailure } from "./messages.js";
import { adminKey, deleteToken, mayDelete, setDeleteToken } from "./storage.js";

const PAGE_SIZE = 50;
const POLL_MS = 3000;
const FIRST_PAGE = `/api/upload/?limit=${PAGE_SIZE}`;

function displayName(image) {
  return image.original_name || image.filename;
}

/** Asks before deleting, with the page's <dialog> (or window.confirm where there is none). */
function confirmDelete(name) {
  const dialog = document.getElementById("confirm-delete");
  if (!dialog || typeof dialog.showModal !== "function") {
    return Promise.resolve(window.confirm(`Delete “${name}”?`));
  }
  document.getElementById("confirm-text").textContent =
    `“${name}” will be removed from this server and its links will stop working.`;
  const ok = document.getElementById("confirm-ok");
  const cancel = document.getElementById("confirm-cancel");
  return new Promise((resolve) => {
    const onOk = () => dialog.close("delete");
    const onCancel = () => dialog.close("cancel");
    ok.addEventListener("click", onOk);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener(
      "close",
      () => {
        ok.removeEventListener("click", onOk);
        cancel.removeEventListener("click", onCancel);
        resolve(dialog.returnValue === "delete");
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    cancel.focus();
  });
}

export class Gallery {
  constructor({ table, body, empty, message, count, sentinel, loading, loadMore }) {
    this.table = table;
    this.body = body;
    this.empty = empty;
    this.message = message;
    this.count = count;
    this.sentinel = sentinel;
    this.loading = loading;
    this.loadMoreButton = loadMore;
    this.rows = new Map(); // filename → { image, row }
    this.etag = "";
    this.next = "";
    this.total = null;
    this.loaded = false;
    this.busy = false;
    this.active = false;
    this.blocked = false; // listing refused (401/403): wait for a key instead of polling
    this.failed = false;

    loadMore.addEventListener("click", () => this.loadMore());
    if ("IntersectionObserver" in window) {
      this.observer = new IntersectionObserver(
        (entries) => {
          if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
        },
        { rootMargin: "0px 0px 400px 0px" },
      );
      this.observer.observe(sentinel);
    }
    window.setInterval(() => this.poll(), POLL_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.poll();
    });
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

  async reload() {
    if (this.busy) return;
    await this.fetchPage(FIRST_PAGE, (page) => {
      this.body.replaceChildren();
      this.rows.clear();
      for (const image of page.items) this.appendRow(image);
      this.etag = page.etag;
      this.total = page.total;
      this.loaded = true;
    });
  }

  /** The next page, from the Link header of the last one. */
  async loadMore() {
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
    this.busy = true;
    this.loading.hidden = false;
    try {
      const page = await fetchImages(path);
      this.clearMessage();
      apply(page);
      this.next = page.next;
    } catch (error) {
      this.showListingError(error);
    } finally {
      this.busy = false;
      this.loading.hidden = true;
      this.refresh();
    }
    this.fillViewport();
  }

  /** Keeps loading while the sentinel is still on screen (a tall window, short rows). */
  fillViewport() {
    if (!this.next || !this.active) return;
    const box = this.sentinel.getBoundingClientRect();
    if (box.top < window.innerHeight + 400) window.requestAnimationFrame(() => this.loadMore());
  }

  /** Asks whether the first page changed; merges what did (new rows on top, vanished gone). */
  async poll() {
    if (!this.active || this.busy || this.blocked || document.visibilityState !== "visible") return;
    if (!this.loaded) {
      this.reload();
      return;
    }
    this.busy = true;
    try {
      const page = await fetchImages(FIRST_PAGE, this.etag);
      if (!page.notModified) {
        this.merge(page);
        this.etag = page.etag;
        if (page.total !== null) this.total = page.total;
      }
      if (this.failed) this.clearMessage();
    } catch (error) {
      this.showListingError(error);
    } finally {
      this.busy = false;
      this.refresh();
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
      const row = this.buildRow(image);
      if (after) after.after(row);
      else this.body.prepend(row);
      this.rows.set(image.filename, { image, row });
      after = row;
    }
  }

  /** A new upload from this page: shown at once, without waiting for the next poll. */
  addUploaded(image) {
    if (!this.loaded || this.rows.has(image.filename)) return;
    const row = this.buildRow(image);
    this.body.prepend(row);
    this.rows.set(image.filename, { image, row });
    if (this.total !== null) this.total += 1;
    this.refresh();
  }

  appendRow(image) {
    const row = this.buildRow(image);
    this.body.append(row);
    this.rows.set(image.filename, { image, row });
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
    const link = el("a", {
      class: "image-url",
      href: image.url,
      target: "_blank",
      rel: "noopener",
      text: image.url,
    });
    const dimensions = image.width && image.height ? `${image.width} × ${image.height}` : "—";
    const row = el(
      "tr",
      { "data-filename": image.filename },
      el("td", { class: "cell-thumb" }, thumb),
      el("td", { class: "cell-name", "data-label": "Name" }, el("span", { class: "image-name", text: name })),
      el(
        "td",
        { class: "cell-url", "data-label": "URL" },
        el("div", { class: "url-cell" }, link, copyButton(() => image.url, `URL of ${name}`)),
      ),
      el("td", { class: "cell-size", "data-label": "Size", text: humanSize(image.size) }),
      el("td", { class: "cell-dims", "data-label": "Dimensions", text: dimensions }),
      el(
        "td",
        { class: "cell-date", "data-label": "Uploaded" },
        el("time", { datetime: image.created_at, text: localDate(image.created_at) }),
      ),
      el("td", { class: "cell-actions" }),
    );
    this.renderActions(image, row);
    return row;
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

  async remove(image, button) {
    const name = displayName(image);
    if (!(await confirmDelete(name))) return;
    button.disabled = true;
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
      if (!(error instanceof ApiError) || error.code !== "not_found") {
        button.disabled = false;
        this.showMessage(deleteFailure(error, name), "error");
        button.focus();
        return;
      }
      // Already gone (deleted elsewhere): the row goes too.
    }
    setDeleteToken(image.filename, null);
    this.dropRow(image.filename);
    this.clearMessage();
    announce(`${name} deleted`);
  }

  dropRow(filename) {
    const entry = this.rows.get(filename);
    if (!entry) return;
    const neighbour = entry.row.nextElementSibling || entry.row.previousElementSibling;
    entry.row.remove();
    this.rows.delete(filename);
    if (this.total !== null) this.total = Math.max(0, this.total - 1);
    this.etag = ""; // the next poll fetches the first page again
    const focusTarget = neighbour && neighbour.querySelector("button.delete-button, button");
    if (focusTarget) focusTarget.focus();
    else document.getElementById("panel-images").focus();
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

  /** Table, empty state, count and the "Load more" button follow the current rows. */
  refresh() {
    const hasRows = this.rows.size > 0;
    this.table.hidden = !hasRows;
    this.empty.hidden = hasRows || !this.loaded || this.blocked;
    const total = this.total ?? this.rows.size;
    this.count.textContent = this.loaded && hasRows ? (total === 1 ? "1 image" : `${total} images`) : "";
    this.loadMoreButton.hidden = !(this.loaded && this.next);
  }
}
