// The delete page (delete.html#filename:token), as ShareX opens a DeletionURL: shows the image
// and one Delete button. The fragment never reaches a server or a Referer; it leaves the
// address bar (and the history entry) as soon as it is read and stays only in memory here.

import { ApiError, deleteImage, fetchImage } from "./api.js";
import { humanSize, localDate, sameOriginPath } from "./format.js";
import { setDeleteToken } from "./storage.js";

const byId = (id) => document.getElementById(id);
const heading = byId("delete-heading");
const figure = byId("delete-figure");
const picture = byId("delete-image");
const caption = byId("delete-name");
const status = byId("delete-status");
const button = byId("delete-button");
const retry = byId("delete-retry");

// A stored name has no ":", "/" or "#"; a token is URL-safe base64 (rights.new_delete_token).
const NAME = /^[A-Za-z0-9_.-]+$/;
const TOKEN = /^[A-Za-z0-9_-]+$/;

let target = null; // { filename, token }
let image = null;

/** { filename, token } from "#filename:token", or null when the fragment is not one. */
function parseFragment(fragment) {
  let text = fragment.replace(/^#/, "");
  try {
    text = decodeURIComponent(text);
  } catch {
    return null;
  }
  const colon = text.indexOf(":");
  if (colon < 0) return null;
  const filename = text.slice(0, colon);
  const token = text.slice(colon + 1);
  if (!NAME.test(filename) || !TOKEN.test(token) || filename.startsWith(".")) return null;
  return { filename, token };
}

/** Reads the fragment, then takes it out of the address bar. */
function takeFragment() {
  const fragment = window.location.hash;
  if (fragment) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return fragment;
}

function show(title, text, { deleteButton = false, retryButton = false, focus = false } = {}) {
  heading.textContent = title;
  status.textContent = text;
  button.hidden = !deleteButton;
  button.disabled = false;
  retry.hidden = !retryButton;
  if (focus) status.focus();
}

function displayName() {
  return (image && image.original_name) || (target && target.filename) || "";
}

async function load() {
  retry.hidden = true;
  figure.hidden = true;
  show("Delete an image", "Looking for the image…");
  try {
    image = await fetchImage(target.filename);
  } catch (error) {
    if (error instanceof ApiError && error.code === "not_found") {
      show(
        "This image is not here",
        "It was deleted already, or the link is mistyped. There is nothing left to delete.",
      );
    } else {
      show("Delete an image", "Could not reach the server to find the image.", {
        retryButton: true,
      });
    }
    return;
  }
  picture.src = sameOriginPath(image.thumbnail_url || image.url);
  caption.textContent = displayName();
  figure.hidden = false;
  const facts = [];
  if (image.width && image.height) facts.push(`${image.width} × ${image.height}`);
  if (Number.isFinite(image.size)) facts.push(humanSize(image.size));
  if (image.created_at) facts.push(`uploaded ${localDate(image.created_at)}`);
  show(
    "Delete this image?",
    `${facts.join(" · ")}. Deleting removes it from this server; its links stop working.`,
    { deleteButton: true },
  );
}

async function remove() {
  button.disabled = true;
  status.textContent = "Deleting…";
  try {
    await deleteImage(target.filename, target.token);
  } catch (error) {
    const code = error instanceof ApiError ? error.code : "network";
    if (code === "not_found") {
      figure.hidden = true;
      show("This image is not here", "It was deleted already. There is nothing left to delete.", {
        focus: true,
      });
    } else if (code === "forbidden" || code === "auth_required") {
      show(
        "This link can't delete the image",
        "The token in this delete link is not this image's, so nothing was deleted. Use the whole link the upload gave you.",
        { focus: true },
      );
    } else {
      show("Delete this image?", "Could not reach the server: nothing was deleted. Try again.", {
        deleteButton: true,
      });
      button.focus();
    }
    return;
  }
  setDeleteToken(target.filename, null);
  figure.hidden = true;
  picture.removeAttribute("src");
  target = null;
  show("Deleted", `“${displayName()}” is gone from this server; its links now answer “not found”.`, {
    focus: true,
  });
}

function start(fragment) {
  image = null;
  target = parseFragment(fragment);
  if (!target) {
    figure.hidden = true;
    show(
      "This delete link is not complete",
      fragment
        ? "A delete link ends with #name:token, as the upload gave it. Copy the whole link and open it again."
        : "Open the delete link the upload gave you: it ends with #name:token.",
    );
    return;
  }
  load();
}

button.addEventListener("click", () => {
  if (target) remove();
});
retry.addEventListener("click", () => {
  if (target) load();
});
// Another delete link opened over this page changes only the fragment.
window.addEventListener("hashchange", () => {
  if (window.location.hash) start(takeFragment());
});

start(takeFragment());
