// Plain words for each error code. The code decides what we say; the server's detail follows.

const UPLOAD_TITLES = {
  too_large: "Too large.",
  unsupported_type: "Not an image this server accepts.",
  too_many_pixels: "Too many pixels.",
  too_many_frames: "Too many animation frames.",
  corrupt_image: "The image could not be read.",
  invalid_image: "The image could not be read.",
  empty_file: "The file is empty.",
  missing_file: "No file arrived.",
  invalid_multipart: "The upload arrived garbled.",
  too_many_files: "Only one file per upload.",
  invalid_expiry: "This server does not accept that expiry.",
  auth_required: "Uploads on this server need the admin key.",
  forbidden: "The admin key stored in this browser was refused.",
  storage_full: "The server is out of space.",
  storage_quota: "The server's storage quota is used up.",
  rate_limited: "Too many uploads from here just now.",
  too_many_uploads: "Too many uploads at once from here.",
  unavailable: "The server is busy.",
  bad_gateway: "The server could not answer just now.",
  gateway_timeout: "The server took too long to answer.",
  network: "Could not reach the server.",
  bad_response: "The server gave an answer we could not read.",
  aborted: "Upload cancelled.",
  internal_error: "Something went wrong on the server.",
  server_error: "Something went wrong on the server.",
};

const UPLOAD_HINTS = {
  network: "Check your connection, then try again.",
  unavailable: "Try again in a moment.",
  bad_gateway: "Try again in a moment.",
  gateway_timeout: "Try again in a moment.",
  rate_limited: "Wait a little, then try again.",
  too_many_uploads: "Wait for the others to finish, then try again.",
  storage_quota: "Delete some images, or ask the server's admin for more room.",
  auth_required: "Open the management link from the server's log to store the key here.",
  forbidden: "Open the management link again, or forget the key and ask for a new link.",
};

/** { title, detail } for a failed upload. */
export function uploadFailure(error) {
  const title = UPLOAD_TITLES[error.code] || "The server refused this file.";
  const detail = error.detail || UPLOAD_HINTS[error.code] || "";
  return { title, detail };
}

// Codes for which the same upload may work later. The server's own codes here are exactly
// those errors.py marks retryable (tests/test_errors.py checks); the rest are this page's own
// (no answer, an unreadable answer, a cancelled upload).
const RETRYABLE = [
  "internal_error",
  "bad_gateway",
  "unavailable",
  "gateway_timeout",
  "rate_limited",
  "too_many_uploads",
  "network",
  "server_error",
  "bad_response",
  "aborted",
];

/** Whether trying the same upload again could work. */
export function isRetryable(error) {
  return RETRYABLE.includes(error.code);
}

/** A sentence for the Images tab when the listing fails. */
export function listingFailure(error) {
  switch (error.code) {
    case "auth_required":
      return "The image list on this server is private. Open the management link from the server's log to see it here.";
    case "forbidden":
      return "The admin key stored in this browser was refused, so the image list can't be shown. Open the management link again.";
    case "network":
      return "Could not reach the server to load the images. Retrying…";
    default:
      return `The image list could not be loaded${error.detail ? `: ${error.detail}` : "."} Retrying…`;
  }
}

/** A sentence for a failed delete. */
export function deleteFailure(error, name) {
  switch (error.code) {
    case "auth_required":
    case "forbidden":
      return `“${name}” was not deleted: this browser is not allowed to delete it.`;
    case "network":
      return `“${name}” was not deleted: could not reach the server. Try again.`;
    default:
      return `“${name}” was not deleted${error.detail ? `: ${error.detail}` : "."}`;
  }
}

/** Why one image of a "Delete selected" stayed: a short phrase for its row. */
export function deleteReason(error) {
  switch (error.code) {
    case "auth_required":
    case "forbidden":
      return "Not deleted: this browser is not allowed to delete it (it holds no valid delete token for it, nor the admin key).";
    case "network":
      return "Not deleted: could not reach the server.";
    default:
      return `Not deleted${error.detail ? `: ${error.detail}` : "."}`;
  }
}

/** A sentence for an album that could not be made. */
export function albumFailure(error) {
  switch (error.code) {
    case "auth_required":
    case "forbidden":
      return "The album was not made: the server refused the right to one of its images.";
    case "not_found":
      return "The album was not made: one of its images was deleted meanwhile.";
    case "network":
      return "The album was not made: could not reach the server. Try again.";
    default:
      return `The album was not made${error.detail ? `: ${error.detail}` : "."}`;
  }
}
