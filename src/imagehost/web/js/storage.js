// What this browser remembers: the admin key and the delete tokens of its own uploads.
// localStorage may be missing or full (private windows); then nothing is remembered.

const ADMIN_KEY = "imagehost.adminKey";
const TOKEN_PREFIX = "imagehost.deleteToken.";

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
