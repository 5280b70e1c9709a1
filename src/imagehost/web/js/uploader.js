// The Upload tab: drop zone, Browse, paste; one row per file with progress, then links or error.

import { uploadFile } from "./api.js";
import { announce, copyField, el } from "./dom.js";
import { extensionOf, formatList, humanSize, sameOriginPath, snippets } from "./format.js";
import { isRetryable, uploadFailure } from "./messages.js";
import { adminKey, setDeleteToken } from "./storage.js";

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
    const { promise } = uploadFile(this.file, (loaded, total) => {
      this.setProgress(total ? loaded / total : 0);
      if (loaded >= total) this.status.textContent = "Processing…";
    });
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
    if (image.thumbnail_url) {
      this.releasePreview();
      this.preview.hidden = false;
      this.preview.src = sameOriginPath(image.thumbnail_url);
    }
    const link = el("a", {
      class: "upload-open",
      href: image.url,
      target: "_blank",
      rel: "noopener",
      text: "Open image",
    });
    this.result.replaceChildren(
      el(
        "div",
        { class: "share" },
        copyField("URL", image.url, "URL"),
        ...snippets(image).map((s) => copyField(s.label, s.text, s.label)),
      ),
      link,
    );
    announce(`${image.original_name || this.file.name} uploaded`);
    this.uploader.onUploaded(image);
  }

  fail(error) {
    this.setState("error");
    this.status.textContent = "Not uploaded";
    this.showError(uploadFailure(error), isRetryable(error));
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

export class Uploader {
  constructor({ zone, input, list, hint, notice, onUploaded, onFilesArrived }) {
    this.zone = zone;
    this.input = input;
    this.list = list;
    this.hint = hint;
    this.notice = notice;
    this.onUploaded = onUploaded;
    this.onFilesArrived = onFilesArrived;
    this.config = null;
    this.queue = [];
    this.running = 0;

    zone.addEventListener("click", () => input.click());
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
    // Newest batch on top, in the order the files were given.
    this.list.prepend(...rows.map((row) => row.node));
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
    announce(files.length === 1 ? "1 file added" : `${files.length} files added`);
  }

  enqueue(row) {
    row.setState("queued");
    row.status.textContent = "Waiting…";
    row.result.replaceChildren();
    this.queue.push(row);
    this.pump();
  }

  pump() {
    while (this.running < PARALLEL_UPLOADS && this.queue.length) {
      const row = this.queue.shift();
      this.running += 1;
      row.start().finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }
}
