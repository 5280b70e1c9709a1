// Every call to the server: config, upload (XHR, for progress events), list, one image, delete,
// albums, the ShareX file (fetch). Failures become ApiError with the server's `code` and
// `detail`; "network" when none answered.

import { adminKey } from "./storage.js";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail || "";
  }
}

// Used only when a body is not our JSON error shape (an unexpected proxy page, say).
const CODE_BY_STATUS = {
  400: "bad_request",
  401: "auth_required",
  403: "forbidden",
  404: "not_found",
  413: "too_large",
  415: "unsupported_type",
  422: "invalid_image",
  503: "unavailable",
  507: "storage_full",
};

function errorFrom(status, bodyText) {
  let code = CODE_BY_STATUS[status] || (status >= 500 ? "server_error" : "http_error");
  let detail = "";
  try {
    const body = JSON.parse(bodyText);
    if (body && typeof body.code === "string") code = body.code;
    if (body && typeof body.detail === "string") detail = body.detail;
  } catch {
    // Not JSON: keep the code derived from the status.
  }
  return new ApiError(status, code, detail);
}

function authHeaders(extra = {}) {
  const key = adminKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** The answer's JSON: an ApiError from its body when it is a refusal, bad_response when it is
 * not JSON at all. */
async function jsonOf(response) {
  const text = await response.text();
  if (!response.ok) throw errorFrom(response.status, text);
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, "bad_response", "");
  }
}

async function request(url, options = {}) {
  try {
    return await fetch(url, { credentials: "same-origin", cache: "no-store", ...options });
  } catch {
    throw new ApiError(0, "network", "");
  }
}

/** GET /api/config: limits and formats, never hard-coded here. */
export async function fetchConfig() {
  const response = await request("/api/config");
  const text = await response.text();
  if (!response.ok) throw errorFrom(response.status, text);
  return JSON.parse(text);
}

/**
 * POST /api/upload/ as multipart/form-data, reporting bytes sent; `expiresIn` ("P1D", "never")
 * goes beside the file as the field `expires_in`, none when "" (the server's default).
 * Returns { promise, abort }; the promise resolves to the image object.
 */
export function uploadFile(file, onProgress, expiresIn = "") {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", "/api/upload/");
    xhr.responseType = "text";
    for (const [name, value] of Object.entries(authHeaders({ Accept: "application/json" }))) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 201 || xhr.status === 200) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, "bad_response", ""));
        }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "")));
    xhr.addEventListener("timeout", () => reject(new ApiError(0, "network", "")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "")));
    const form = new FormData();
    if (expiresIn) form.append("expires_in", expiresIn);
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

function nextLink(header) {
  if (!header) return "";
  for (const part of header.split(",")) {
    const match = part.match(/<([^>]*)>\s*;.*\brel="?next"?/);
    if (match) return match[1];
  }
  return "";
}

/**
 * GET a page of the listing. With `etag`, asks If-None-Match and returns { notModified: true }
 * on 304. Otherwise { items, etag, next, total }.
 */
export async function fetchImages(url, etag = "") {
  const headers = authHeaders({ Accept: "application/json" });
  if (etag) headers["If-None-Match"] = etag;
  const response = await request(url, { headers });
  if (response.status === 304) return { notModified: true };
  const items = await jsonOf(response);
  if (!Array.isArray(items)) throw new ApiError(response.status, "bad_response", "");
  const total = Number.parseInt(response.headers.get("X-Total-Count") || "", 10);
  return {
    notModified: false,
    items,
    etag: response.headers.get("ETag") || "",
    next: nextLink(response.headers.get("Link")),
    total: Number.isFinite(total) ? total : null,
  };
}

/** GET /api/upload/{filename}: one image's metadata (not behind LISTING). */
export async function fetchImage(filename) {
  const response = await request(`/api/upload/${encodeURIComponent(filename)}`, {
    headers: { Accept: "application/json" },
  });
  return jsonOf(response);
}

/** DELETE /api/upload/{filename} with this browser's delete token, or else the admin key. */
export async function deleteImage(filename, token) {
  const headers = token ? { "X-Delete-Token": token } : authHeaders();
  const response = await request(`/api/upload/${encodeURIComponent(filename)}`, {
    method: "DELETE",
    headers,
  });
  if (response.status === 204 || response.ok) return;
  throw errorFrom(response.status, await response.text());
}

/**
 * POST /api/albums: an album of `images` ([{ filename, delete_token? }], in order), with the
 * admin key when this browser holds one. Resolves to the album, with its own delete_token.
 */
export async function createAlbum(images, title = "") {
  const body = { images };
  if (title) body.title = title;
  const response = await request("/api/albums", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(body),
  });
  return jsonOf(response);
}

function attachmentName(header, fallback) {
  const match = /filename="([^"]+)"/.exec(header || "");
  return match ? match[1] : fallback;
}

/**
 * GET the ShareX file with the admin key (it then carries the key, for UPLOADS=key servers).
 * Resolves to { blob, filename }.
 */
export async function fetchSharexFile(url) {
  const response = await request(url, { headers: authHeaders() });
  if (!response.ok) throw errorFrom(response.status, await response.text());
  const filename = attachmentName(response.headers.get("Content-Disposition"), "imagehost.sxcu");
  return { blob: await response.blob(), filename };
}
