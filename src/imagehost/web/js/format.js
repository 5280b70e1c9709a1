// Pure helpers: human sizes and dates, format lists, share snippets. No DOM, no network.

const SIZE_UNITS = ["B", "KB", "MB", "GB", "TB"];

/** Bytes as a person reads them: 812 B, 14.2 KB, 4.8 MB (powers of 1024, as the limit is). */
export function humanSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < SIZE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits).replace(/\.0$/, "")} ${SIZE_UNITS[unit]}`;
}

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** An ISO 8601 timestamp in the reader's own time zone and locale. */
export function localDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : DATE_FORMAT.format(date);
}

const FORMAT_NAMES = { jpeg: "JPEG", png: "PNG", gif: "GIF", webp: "WebP", avif: "AVIF" };

/** ["jpeg", "png", "gif"] → "JPEG, PNG or GIF". */
export function formatList(formats) {
  const names = formats.map((f) => FORMAT_NAMES[f] || f.toUpperCase());
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}`;
}

/** The lower-cased extension of a file name with its dot (".png"), or "". */
export function extensionOf(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

/** A file name without its extension, for alt texts. */
export function baseName(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(0, dot) : name;
}

function escapeHtmlAttribute(text) {
  return text
    .replace(/&/g, "&amp;")
    .replace(/"/g, "&quot;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}

function escapeMarkdownAlt(text) {
  return text.replace(/[\\[\]]/g, "\\$&");
}

function escapeBbcode(text) {
  return text.replace(/[[\]]/g, "");
}

/**
 * The three ways to embed an image elsewhere, as plain text to copy: the image itself, linked
 * to its share page (a click on it there opens the page with its name and download).
 */
export function snippets(image) {
  const alt = baseName(image.original_name || image.filename || "image");
  const page = image.share_url || image.url;
  return [
    { label: "Markdown", text: `[![${escapeMarkdownAlt(alt)}](${image.url})](${page})` },
    {
      label: "HTML",
      text:
        `<a href="${escapeHtmlAttribute(page)}"><img src="${escapeHtmlAttribute(image.url)}"` +
        ` alt="${escapeHtmlAttribute(alt)}"></a>`,
    },
    { label: "BBCode", text: `[url=${escapeBbcode(page)}][img]${escapeBbcode(image.url)}[/img][/url]` },
  ];
}

/** "1 image", "3 images". */
export function countOf(n, one = "image", many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** A URL the page itself may load (CSP img-src 'self'): same origin, or its path on ours. */
export function sameOriginPath(url) {
  try {
    const parsed = new URL(url, window.location.href);
    if (parsed.origin === window.location.origin) return parsed.href;
    return parsed.pathname + parsed.search;
  } catch {
    return "";
  }
}
