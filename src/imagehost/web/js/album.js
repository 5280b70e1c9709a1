// The album page's lightbox: a thumbnail (click or Enter) opens its image in a <dialog> with
// Previous/Next (and the arrow keys); Escape closes it and focus goes back to the thumbnail.
// Without this script each thumbnail is a plain link to the image's share page.

import { el } from "./dom.js";
import { sameOriginPath } from "./format.js";

const links = [...document.querySelectorAll(".album-grid a.album-link")];

function buildLightbox() {
  const title = el("h2", { class: "lightbox-title", id: "lightbox-title" });
  const counter = el("p", { class: "lightbox-counter" });
  const close = el("button", {
    type: "button",
    class: "button button-secondary button-small lightbox-close",
    text: "Close",
  });
  const picture = el("img", { class: "lightbox-image", alt: "" });
  const previous = el("button", {
    type: "button",
    class: "button button-secondary lightbox-previous",
    text: "Previous",
  });
  const next = el("button", {
    type: "button",
    class: "button button-secondary lightbox-next",
    text: "Next",
  });
  const share = el("a", { class: "button button-primary lightbox-share", text: "Open share page" });
  const dialog = el(
    "dialog",
    { class: "lightbox", "aria-labelledby": "lightbox-title" },
    el("div", { class: "lightbox-head" }, el("div", { class: "lightbox-heading" }, title, counter), close),
    el("div", { class: "lightbox-stage" }, picture),
    el("div", { class: "lightbox-nav" }, previous, share, next),
  );
  document.body.append(dialog);
  return { dialog, title, counter, close, picture, previous, next, share };
}

class Lightbox {
  constructor(items) {
    this.items = items;
    this.index = 0;
    this.parts = buildLightbox();
    const { dialog, close, previous, next } = this.parts;
    close.addEventListener("click", () => dialog.close());
    previous.addEventListener("click", () => this.step(-1));
    next.addEventListener("click", () => this.step(1));
    dialog.addEventListener("keydown", (event) => {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key === "ArrowLeft") this.step(-1);
      else if (event.key === "ArrowRight") this.step(1);
      else return;
      event.preventDefault();
    });
    // A click on the backdrop (outside the box) closes, as Escape does.
    dialog.addEventListener("click", (event) => {
      if (event.target !== dialog) return;
      const box = dialog.getBoundingClientRect();
      const inside =
        event.clientX >= box.left &&
        event.clientX <= box.right &&
        event.clientY >= box.top &&
        event.clientY <= box.bottom;
      if (!inside) dialog.close();
    });
    dialog.addEventListener("close", () => {
      const link = this.items[this.index];
      if (link) link.focus();
    });
  }

  open(index) {
    this.show(index);
    if (!this.parts.dialog.open) this.parts.dialog.showModal();
    this.parts.close.focus();
  }

  step(delta) {
    const count = this.items.length;
    this.show((this.index + delta + count) % count);
  }

  show(index) {
    const { title, counter, picture, previous, next, share } = this.parts;
    const link = this.items[index];
    this.index = index;
    const name = link.dataset.name || "";
    title.textContent = name;
    counter.textContent = `${index + 1} of ${this.items.length}`;
    picture.alt = name;
    const width = Number.parseInt(link.dataset.width || "", 10);
    const height = Number.parseInt(link.dataset.height || "", 10);
    if (width > 0 && height > 0) {
      picture.width = width;
      picture.height = height;
    } else {
      picture.removeAttribute("width");
      picture.removeAttribute("height");
    }
    picture.src = sameOriginPath(link.dataset.full || link.href);
    share.href = link.href;
    const alone = this.items.length < 2;
    previous.disabled = alone;
    next.disabled = alone;
    this.preload(index + 1);
    this.preload(index - 1);
  }

  preload(index) {
    const link = this.items[(index + this.items.length) % this.items.length];
    if (link && link.dataset.full) new Image().src = sameOriginPath(link.dataset.full);
  }
}

if (links.length && typeof HTMLDialogElement === "function") {
  const lightbox = new Lightbox(links);
  links.forEach((link, index) => {
    link.addEventListener("click", (event) => {
      // A new tab or window (Ctrl, Shift, middle click) still gets the share page.
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
        return;
      }
      event.preventDefault();
      lightbox.open(index);
    });
  });
}
