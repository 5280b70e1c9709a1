// What this browser remembers: the admin key, the delete tokens of its own uploads and albums,
// how the Images tab is shown, and the expiry last chosen for uploads.
// localStorage may be missing or full (private windows); then nothing is remembered.

const ADMIN_KEY = "imagehost.adminKey";
const TOKEN_PREFIX = "imagehost.deleteToken.";
const ALBUM_TOKEN_PREFIX = "imagehost.albumToken.";
const GALLERY_VIEW = "imagehost.galleryView";
const GALLERY_VIEWS = ["table", "grid"];
const UPLOAD_EXPIRY = "imagehost.uploadExpiry";
const EXPIRY_SERVER_DEFAULT = "default"; // stored for "" (send nothing), which reads as unset

function read(name) {
  try {
    return window.localStorage.getItem(name);
  } catch {
    return null;
  }
}

function write(name, value) {
  try {
    if (value === null) window.localStorage.removeItem(name);
    else window.localStorage.setItem(name, value);
    return true;
  } catch {
    return false;
  }
}

export function adminKey() {
  return read(ADMIN_KEY) || "";
}

export function setAdminKey(key) {
  return write(ADMIN_KEY, key || null);
}

export function deleteToken(filename) {
  return read(TOKEN_PREFIX + filename) || "";
}

export function setDeleteToken(filename, token) {
  return write(TOKEN_PREFIX + filename, token || null);
}

/** The delete token of an album made in this browser, or "". */
export function albumToken(albumId) {
  return read(ALBUM_TOKEN_PREFIX + albumId) || "";
}

export function setAlbumToken(albumId, token) {
  return write(ALBUM_TOKEN_PREFIX + albumId, token || null);
}

/** How the Images tab shows images: "table" (the default) or "grid". */
export function galleryView() {
  const view = read(GALLERY_VIEW);
  return GALLERY_VIEWS.includes(view) ? view : "table";
}

export function setGalleryView(view) {
  return write(GALLERY_VIEW, GALLERY_VIEWS.includes(view) ? view : null);
}

/**
 * The expiry last chosen on the upload page: an `expires_in` value ("P1D", "never"), "" for
 * the server's default, or null when none was chosen here. Whether the server still allows it
 * is for the page to check.
 */
export function uploadExpiry() {
  const value = read(UPLOAD_EXPIRY);
  if (value === EXPIRY_SERVER_DEFAULT) return "";
  return value && /^[A-Za-z0-9]{1,20}$/.test(value) ? value : null;
}

export function setUploadExpiry(value) {
  return write(UPLOAD_EXPIRY, value === "" ? EXPIRY_SERVER_DEFAULT : value || null);
}

/** True when this browser holds something that lets it delete `filename`. */
export function mayDelete(filename) {
  return Boolean(adminKey() || deleteToken(filename));
}

/**
 * Takes the admin key out of a management link (`upload.html#key=…`): stores it and clears it
 * from the address bar and the history entry, so it is not shared by copying the URL.
 * Returns true when a key was found.
 */
export function adoptKeyFromFragment() {
  const fragment = window.location.hash.replace(/^#/, "");
  if (!fragment.includes("key=")) return false;
  const params = new URLSearchParams(fragment);
  const key = (params.get("key") || "").trim();
  const clean = window.location.pathname + window.location.search;
  window.history.replaceState(null, "", clean);
  if (!key) return false;
  return setAdminKey(key);
}
