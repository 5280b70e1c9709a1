// Small DOM helpers: build elements with text only, copy buttons, the polite announcer, expiry
// notes.

import { expiryText } from "./expiry.js";

/** An element with attributes and children; strings become text nodes, never HTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

let uid = 0;
/** A fresh id for label/for and aria-* pairs. */
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Says something to screen readers without moving focus. */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A new text node after clearing makes screen readers read it even when it repeats.
  window.setTimeout(() => {
    region.textContent = message;
  }, 30);
}

function legacyCopy(text) {
  const area = el("textarea", { readonly: true, class: "visually-hidden", "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** Puts text on the clipboard. The async API needs a secure context; plain http falls back. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused or document not focused: try the old way.
    }
  }
  return legacyCopy(text);
}

/**
 * A "Copy" button for the text `getText()` returns. `what` names the thing for screen readers
 * ("URL", "Markdown"). Shows "Copied" for a moment, or "Press Ctrl+C" after selecting `field`.
 */
export function copyButton(getText, what, field = null) {
  const label = el("span", { class: "copy-label", text: "Copy" });
  const button = el(
    "button",
    { type: "button", class: "button button-secondary button-small copy-button" },
    label,
    el("span", { class: "visually-hidden", text: ` ${what}` }),
  );
  let timer = 0;
  button.addEventListener("click", async () => {
    const ok = await copyText(getText());
    window.clearTimeout(timer);
    if (ok) {
      label.textContent = "Copied";
      button.classList.add("is-copied");
      announce(`${what} copied to the clipboard`);
    } else {
      label.textContent = "Press Ctrl+C";
      if (field) {
        field.focus();
        field.select();
      }
    }
    timer = window.setTimeout(() => {
      label.textContent = "Copy";
      button.classList.remove("is-copied");
    }, 2000);
  });
  return button;
}

/** A read-only text field with its label and copy button, for a URL or a snippet. */
export function copyField(labelText, value, what) {
  const id = nextId("field");
  const input = el("input", {
    id,
    type: "text",
    class: "copy-input",
    readonly: true,
    spellcheck: "false",
  });
  input.value = value;
  input.addEventListener("focus", () => input.select());
  return el(
    "div",
    { class: "copy-field" },
    el("label", { for: id, class: "copy-field-label", text: labelText }),
    input,
    copyButton(() => input.value, what, input),
  );
}

function showExpiry(note, now) {
  const { expired, text, title } = expiryText(note.dataset.expiresAt, now);
  const [word, time] = note.children;
  word.textContent = expired ? "" : "Expires ";
  time.textContent = text;
  time.title = title;
  note.classList.toggle("is-expired", expired);
}

/**
 * "Expires in 59 min" / "Expires Dec 10, 6:48 AM" for an `expires_at`, the moment itself in a
 * <time> (its title the full local date-time); refreshExpiryNotes() keeps it current.
 */
export function expiryNote(iso) {
  const note = el(
    "span",
    { class: "expires", "data-expires-at": iso },
    el("span", { class: "expires-word" }),
    el("time", { class: "expires-at", datetime: iso }),
  );
  showExpiry(note, new Date());
  return note;
}

/** Rewrites every expiry note under `root` for the time now ("in 5 min" becomes "in 4 min"). */
export function refreshExpiryNotes(root = document) {
  const now = new Date();
  for (const note of root.querySelectorAll(".expires[data-expires-at]")) showExpiry(note, now);
}
