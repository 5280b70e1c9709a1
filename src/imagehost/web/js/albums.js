// Making albums on the upload page: which images this browser may put in one, the call, and
// the result (the album's link and its token, which is handed out only once).

import { createAlbum } from "./api.js";
import { copyField, el } from "./dom.js";
import { countOf } from "./format.js";
import { adminKey, deleteToken, setAlbumToken } from "./storage.js";

/**
 * The album entries for `images`, in order: each with the delete token this browser holds
 * (or the upload answer carried), or without one when the admin key is here. Those with
 * neither are `missing`: the server would refuse them.
 */
export function albumEntries(images) {
  const admin = Boolean(adminKey());
  const entries = [];
  const missing = [];
  for (const image of images) {
    const token = image.delete_token || deleteToken(image.filename);
    if (token) entries.push({ filename: image.filename, delete_token: token });
    else if (admin) entries.push({ filename: image.filename });
    else missing.push(image);
  }
  return { entries, missing };
}

/** Creates the album and keeps its token in this browser; resolves to the album. */
export async function makeAlbum(entries, title = "") {
  const album = await createAlbum(entries, title.trim());
  if (album.delete_token) setAlbumToken(album.id, album.delete_token);
  return album;
}

/** The album's link and its token, each with a copy button. */
export function albumResult(album) {
  const open = el("a", { href: album.url, target: "_blank", rel: "noopener", text: "Open album" });
  const parts = [
    el(
      "p",
      { class: "album-result-title" },
      el("strong", { text: "Album made" }),
      ` · ${countOf(album.count)} · `,
      open,
    ),
    copyField("Album link", album.url, "album link"),
  ];
  if (album.delete_token) {
    parts.push(
      copyField("Album token", album.delete_token, "album token"),
      el("p", {
        class: "album-result-hint",
        text: "Keep this token to change or delete the album: the server shows it only once (this browser keeps a copy).",
      }),
    );
  }
  return el("div", { class: "album-result" }, ...parts);
}
