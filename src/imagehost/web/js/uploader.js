// The Upload tab: drop zone, Browse, paste, the "Expires" choice; one row per file with progress,
// then links and expiry or error; a batch of several files can become an album once it is done.

import { albumEntries, albumResult, makeAlbum } from "./albums.js";
import { uploadFile } from "./api.js";
import { announce, copyField, el, expiryNote, nextId } from "./dom.js";
import { expiryOptions, initialExpiry, lifetimeWords } from "./expiry.js";
import { countOf, extensionOf, formatList, humanSize, sameOriginPath, snippets } from "./format.js";
import { albumFailure, isRetryable, uploadFailure } from "./messages.js";
import { adminKey, setDeleteToken, setUploadExpiry, uploadExpiry } from "./storage.js";

const PARALLEL_UPLOADS = 3;

function filesOf(dataTransfer) {
  if (!dataTransfer) return [];
  if (dataTransfer.files && dataTransfer.files.length) return [...dataTransfer.files];
  const files = [];
  for (const item of dataTransfer.items || []) {
    if (item.kind === "file") {
      const file = item.getAsFile();
      if (file) files.push(file);
    }
  }
  return files;
}

function carriesFiles(event) {
  return Boolean(event.dataTransfer && [...event.dataTransfer.types].includes("Files"));
}

/** One file's row: its progress while sending, then its links or its error. */
class UploadRow {
  constructor(file, uploader) {
    this.file = file;
    this.uploader = uploader;
    this.image = null; // the server's answer, once uploaded
    this.expiresIn = uploader.expiresIn(); // as chosen when the file was given
    this.batch = null;
    this.preview = el("img", { class: "upload-preview", alt: "", width: 56, height: 56 });
    this.preview.hidden = true;
    this.previewUrl = "";
    this.name = el("span", { class: "upload-name", text: file.name || "pasted image" });
    this.progress = el("progress", { class: "upload-progress", max: 100, value: 0 });
    this.progress.setAttribute("aria-label", `Upload progress of ${file.name || "pasted image"}`);
    this.percent = el("span", { class: "upload-percent", text: "" });
    this.status = el("p", { class: "upload-status", text: "Waiting…" });
    this.result = el("div", { class: "upload-result" });
    this.node = el(
      "li",
      { class: "upload-item", "data-state": "queued" },
      el(
        "div",
        { class: "upload-row" },
        el("div", { class: "upload-thumb" }, this.preview),
        el(
          "div",
          { class: "upload-main" },
          el(
            "div",
            { class: "upload-line" },
            this.name,
            el("span", { class: "upload-size", text: humanSize(file.size) }),
          ),
          el("div", { class: "upload-bar" }, this.progress, this.percent),
          this.status,
        ),
      ),
      this.result,
    );
  }

  /** Shows the picture itself while it uploads (only for files that passed the checks). */
  showPreview() {
    if (this.previewUrl || !this.file.type.startsWith("image/")) return;
    this.previewUrl = URL.createObjectURL(this.file);
    this.preview.addEventListener("load", () => this.releasePreview(), { once: true });
    this.preview.addEventListener("error", () => this.dropPreview(), { once: true });
    this.preview.hidden = false;
    this.preview.src = this.previewUrl;
  }

  releasePreview() {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = "";
  }

  dropPreview() {
    this.releasePreview();
    this.preview.hidden = true;
  }

  setState(state) {
    this.node.dataset.state = state;
  }

  setProgress(fraction) {
    const percent = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
    this.progress.value = percent;
    this.percent.textContent = `${percent}%`;
  }

  start() {
    this.setState("uploading");
    this.result.replaceChildren();
    this.setProgress(0);
    this.status.textContent = "Uploading…";
    const { promise } = uploadFile(
      this.file,
      (loaded, total) => {
        this.setProgress(total ? loaded / total : 0);
        if (loaded >= total) this.status.textContent = "Processing…";
      },
      this.expiresIn,
    );
    return promise.then(
      (image) => this.succeed(image),
      (error) => this.fail(error),
    );
  }

  succeed(image) {
    this.setProgress(1);
    this.setState("done");
    if (image.delete_token) setDeleteToken(image.filename, image.delete_token);
    const facts = [humanSize(image.size)];
    if (image.width && image.height) facts.push(`${image.width} × ${image.height}`);
    this.status.textContent = `Uploaded · ${facts.join(" · ")}`;
    if (image.expires_at) this.status.append(" · ", expiryNote(image.expires_at));
    if (image.thumbnail_url) {
      this.releasePreview();
      this.preview.hidden = false;
      this.preview.src = sameOriginPath(image.thumbnail_url);
    }
    this.image = image;
    const links = el(
      "p",
      { class: "upload-open" },
      el("a", { href: image.url, target: "_blank", rel: "noopener", text: "Open image" }),
      image.share_url
        ? el("a", { href: image.share_url, target: "_blank", rel: "noopener", text: "Open share page" })
        : null,
    );
    const fields = [copyField("URL", image.url, "URL")];
    if (image.share_url) fields.push(copyField("Share link", image.share_url, "share link"));
    fields.push(...snippets(image).map((s) => copyField(s.label, s.text, s.label)));
    if (image.delete_page_url) {
      fields.push(copyField("Delete link", image.delete_page_url, "delete link"));
    }
    const parts = [el("div", { class: "share" }, ...fields)];
    if (image.delete_page_url) {
      parts.push(
        el("p", {
          class: "upload-note",
          text: "Anyone with the delete link can delete this image: keep it to yourself.",
        }),
      );
    }
    this.result.replaceChildren(...parts, links);
    announce(`${image.original_name || this.file.name} uploaded`);
    this.uploader.onUploaded(image);
  }

  fail(error) {
    this.setState("error");
    this.status.textContent = "Not uploaded";
    this.showError(uploadFailure(error), isRetryable(error));
    // The server's limits changed since the page asked (a restart with a new MAX_EXPIRY).
    if (error.code === "invalid_expiry") this.uploader.onExpiryRefused();
  }

  /** Shows why the file was refused, in words; `retry` adds a button to send it again. */
  showError({ title, detail }, retry = false) {
    this.setState("error");
    this.percent.textContent = "";
    const message = el(
      "p",
      { class: "upload-error", role: "alert" },
      el("strong", { text: title }),
      detail ? ` ${detail}` : "",
    );
    const parts = [message];
    if (retry) {
      const again = el("button", {
        type: "button",
        class: "button button-secondary button-small",
        text: "Try again",
      });
      again.addEventListener("click", () => this.uploader.enqueue(this));
      parts.push(again);
    }
    this.result.replaceChildren(el("div", { class: "upload-failure" }, ...parts));
  }
}

/**
 * The files given at once (one drop, one choice, one paste). When all are done and at least
 * two arrived, one button makes an album of them, in the order they were given.
 */
class UploadBatch {
  constructor(rows) {
    this.rows = rows;
    this.album = null;
    this.busy = false;
    const titleId = nextId("album-title");
    this.summary = el("p", { class: "batch-summary" });
    this.title = el("input", {
      id: titleId,
      type: "text",
      class: "batch-title-input",
      maxlength: 200,
      autocomplete: "off",
    });
    this.button = el("button", {
      type: "button",
      class: "button button-primary button-small",
      text: "Make album",
    });
    this.error = el("p", { class: "upload-error batch-error", role: "alert" });
    this.error.hidden = true;
    this.bar = el(
      "div",
      { class: "batch-bar" },
      this.summary,
      el(
        "div",
        { class: "batch-controls" },
        el("label", { for: titleId, class: "batch-title-label", text: "Album title (optional)" }),
        this.title,
        this.button,
      ),
    );
    this.result = el("div", { class: "batch-result" });
    this.node = el("li", { class: "upload-batch" }, this.bar, this.error, this.result);
    this.node.hidden = true;
    this.button.addEventListener("click", () => this.makeAlbum());
  }

  uploaded() {
    return this.rows.filter((row) => row.node.dataset.state === "done" && row.image);
  }

  /** A row finished (or was sent again): show the button once all are done. */
  update() {
    if (this.album) return;
    const settled = this.rows.every((row) => ["done", "error"].includes(row.node.dataset.state));
    const done = this.uploaded();
    this.node.hidden = !(settled && done.length >= 2);
    const failed = this.rows.length - done.length;
    this.summary.textContent =
      `${countOf(done.length)} of this batch uploaded` + (failed ? ` (${failed} not)` : "");
  }

  async makeAlbum() {
    if (this.busy || this.album) return;
    const { entries } = albumEntries(this.uploaded().map((row) => row.image));
    this.busy = true;
    this.button.disabled = true;
    this.error.hidden = true;
    try {
      this.album = await makeAlbum(entries, this.title.value);
    } catch (error) {
      this.error.textContent = albumFailure(error);
      this.error.hidden = false;
      this.button.disabled = false;
      return;
    } finally {
      this.busy = false;
    }
    this.bar.remove();
    this.result.replaceChildren(albumResult(this.album));
    announce(`Album of ${countOf(this.album.count)} made`);
    const field = this.result.querySelector("input");
    if (field) field.focus();
  }
}

export class Uploader {
  constructor(parts) {
    const { zone, input, list, hint, notice, expiry, onUploaded, onFilesArrived } = parts;
    this.zone = zone;
    this.input = input;
    this.list = list;
    this.hint = hint;
    this.notice = notice;
    this.onUploaded = onUploaded;
    this.onFilesArrived = onFilesArrived;
    this.onExpiryRefused = parts.onExpiryRefused || (() => {});
    this.expiry = expiry; // { field, select, hint }
    this.config = null;
    this.queue = [];
    this.running = 0;

    zone.addEventListener("click", () => input.click());
    expiry.select.addEventListener("change", () => setUploadExpiry(expiry.select.value));
    input.addEventListener("change", () => {
      this.addFiles([...input.files]);
      input.value = "";
    });

    let depth = 0;
    zone.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth += 1;
      zone.classList.add("is-dragover");
    });
    zone.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("is-dragover");
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove("is-dragover");
    });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      event.stopPropagation();
      depth = 0;
      zone.classList.remove("is-dragover");
      this.addFiles(filesOf(event.dataTransfer));
    });

    // A file dropped anywhere else on the page is uploaded too, never opened by the browser.
    window.addEventListener("dragover", (event) => {
      if (carriesFiles(event)) event.preventDefault();
    });
    window.addEventListener("drop", (event) => {
      if (!event.dataTransfer) return;
      event.preventDefault();
      this.addFiles(filesOf(event.dataTransfer));
    });

    document.addEventListener("paste", (event) => {
      const files = filesOf(event.clipboardData);
      if (!files.length) return;
      event.preventDefault();
      this.addFiles(files);
    });
  }

  setConfig(config) {
    this.config = config;
    this.input.accept = [...config.allowed_types, ...config.allowed_extensions].join(",");
    const paste = /Mac|iPhone|iPad/.test(navigator.platform || "") ? "⌘V" : "Ctrl+V";
    this.hint.textContent =
      `${formatList(config.allowed_formats)} · up to ${humanSize(config.max_upload_bytes)} each` +
      ` · several at once · or paste with ${paste}`;
    this.refreshNotice();
    this.showExpiryChoice();
  }

  /** The presets this server accepts, the remembered choice (or the server's default) chosen. */
  showExpiryChoice() {
    const { field, select, hint } = this.expiry;
    const options = expiryOptions(this.config);
    const chosen = initialExpiry(options, uploadExpiry());
    select.replaceChildren(
      ...options.map((option) => el("option", { value: option.value, text: option.label })),
    );
    select.value = chosen;
    const maximum = this.config.max_expiry;
    hint.textContent = maximum ? `This server keeps uploads at most ${lifetimeWords(maximum)}.` : "";
    hint.hidden = !maximum;
    field.hidden = false;
  }

  /** What the next file sends as `expires_in`: "" (nothing) until the server's limits are known. */
  expiresIn() {
    return this.expiry.field.hidden ? "" : this.expiry.select.value;
  }

  /** The server could not tell its limits: the server still checks every file itself. */
  configMissing() {
    this.hint.textContent = "Could not ask the server what it accepts; it will check each file.";
  }

  refreshNotice() {
    const needsKey = this.config && this.config.uploads === "key" && !adminKey();
    this.notice.hidden = !needsKey;
    this.notice.textContent = needsKey
      ? "Uploads on this server need the admin key. Open the management link from the server's log in this browser to enable them."
      : "";
  }

  /** Why the browser refuses `file` before sending it, or null when it may go. */
  precheck(file) {
    if (file.size === 0) return { title: "The file is empty.", detail: "" };
    const config = this.config;
    if (!config) return null;
    const typeOk = config.allowed_types.includes(file.type);
    const extensionOk = config.allowed_extensions.includes(extensionOf(file.name));
    if (!typeOk && !extensionOk) {
      return {
        title: "Not an image this server accepts.",
        detail: `Allowed: ${formatList(config.allowed_formats)}.`,
      };
    }
    if (file.size > config.max_upload_bytes) {
      return {
        title: "Too large.",
        detail: `This file is ${humanSize(file.size)}; the limit is ${humanSize(config.max_upload_bytes)}.`,
      };
    }
    return null;
  }

  addFiles(files) {
    if (!files.length) return;
    if (this.onFilesArrived) this.onFilesArrived();
    const rows = files.map((file) => new UploadRow(file, this));
    const batch = new UploadBatch(rows);
    for (const row of rows) row.batch = batch;
    // Newest batch on top, in the order the files were given; its album bar above it.
    this.list.prepend(batch.node, ...rows.map((row) => row.node));
    for (const row of rows) {
      const refusal = this.precheck(row.file);
      if (refusal) {
        row.status.textContent = "Not uploaded";
        row.showError(refusal);
      } else {
        row.showPreview();
        this.enqueue(row);
      }
    }
    batch.update();
    announce(files.length === 1 ? "1 file added" : `${files.length} files added`);
  }

  enqueue(row) {
    row.setState("queued");
    row.status.textContent = "Waiting…";
    row.result.replaceChildren();
    row.batch.update();
    this.queue.push(row);
    this.pump();
  }

  pump() {
    while (this.running < PARALLEL_UPLOADS && this.queue.length) {
      const row = this.queue.shift();
      this.running += 1;
      row.start().finally(() => {
        this.running -= 1;
        row.batch.update();
        this.pump();
      });
    }
  }
}
