// Pure helpers for expiring uploads: the presets the upload page offers within the server's
// MAX_EXPIRY, which one is chosen first, and how an `expires_at` reads. No DOM, no network.

/** The value sent as `expires_in` for "Server default": nothing at all. */
export const SERVER_DEFAULT = "";

// The presets of issue 14, shortest first, as ISO 8601 durations (expiry.py parses them).
export const EXPIRY_PRESETS = [
  { value: "never", label: "Never" },
  { value: "PT1H", label: "1 hour" },
  { value: "P1D", label: "1 day" },
  { value: "P1W", label: "1 week" },
  { value: "P1M", label: "1 month" },
];

const FIXED_SECONDS = { PT1H: 3600, P1D: 86400, P1W: 7 * 86400 };

function daysInMonth(year, month) {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/**
 * The seconds a preset lasts from `now` (a Date), or null for "never". A month is a calendar
 * one in UTC, its day clamped to the month's last (31 January + P1M = 28 February), as the
 * server counts it (isodate).
 */
export function presetSeconds(value, now = new Date()) {
  if (value === "never") return null;
  if (value in FIXED_SECONDS) return FIXED_SECONDS[value];
  if (value === "P1M") {
    const year = now.getUTCFullYear() + (now.getUTCMonth() === 11 ? 1 : 0);
    const month = (now.getUTCMonth() + 1) % 12;
    const day = Math.min(now.getUTCDate(), daysInMonth(year, month));
    const then = Date.UTC(
      year,
      month,
      day,
      now.getUTCHours(),
      now.getUTCMinutes(),
      now.getUTCSeconds(),
      now.getUTCMilliseconds(),
    );
    return Math.round((then - now.getTime()) / 1000);
  }
  return undefined;
}

/** A lifetime in seconds as a person says it: "10 min", "2 hours", "3 days". */
export function lifetimeWords(seconds) {
  const units = [
    [86400, "day"],
    [3600, "hour"],
    [60, "min"],
  ];
  for (const [size, unit] of units) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return unit === "min" ? `${n} min` : `${n} ${unit}${n === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} s`;
}

/**
 * The options for a server's config ({ default_expiry, max_expiry }, seconds or null): the
 * presets the server accepts (none longer than max_expiry; no "Never" under a maximum), and
 * "Server default" — send nothing — when no preset equals default_expiry. Each option is
 * { value, label, isDefault }.
 */
export function expiryOptions(config, now = new Date()) {
  const maximum = config.max_expiry ?? null;
  const fallback = config.default_expiry ?? null;
  const options = [];
  let defaultShown = false;
  for (const preset of EXPIRY_PRESETS) {
    const seconds = presetSeconds(preset.value, now);
    if (maximum !== null && (seconds === null || seconds > maximum)) continue;
    const isDefault = seconds === fallback;
    defaultShown ||= isDefault;
    options.push({ ...preset, isDefault });
  }
  if (!defaultShown) {
    const label =
      fallback === null ? "Server default (never)" : `Server default (${lifetimeWords(fallback)})`;
    options.unshift({ value: SERVER_DEFAULT, label, isDefault: true });
  }
  return options;
}

/** The option chosen first: the remembered one while it is still offered, else the default. */
export function initialExpiry(options, remembered) {
  if (remembered !== null && options.some((option) => option.value === remembered)) {
    return remembered;
  }
  const preset = options.find((option) => option.isDefault);
  return preset ? preset.value : SERVER_DEFAULT;
}

const FULL_DATE = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const SHORT = { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" };
const THIS_YEAR = new Intl.DateTimeFormat(undefined, SHORT);
const OTHER_YEAR = new Intl.DateTimeFormat(undefined, { ...SHORT, year: "numeric" });

/**
 * How an `expires_at` (ISO 8601) reads at `now`: { expired, text, title }. Soon ones are
 * relative ("in 59 min", "in 5 h"), later ones a short local date-time ("Dec 10, 6:48 AM", the
 * year only when not this one); `title` is the full one.
 */
export function expiryText(iso, now = new Date()) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return { expired: false, text: "", title: "" };
  const left = Math.floor((at.getTime() - now.getTime()) / 1000);
  const title = `Expires ${FULL_DATE.format(at)}`;
  if (left <= 0) return { expired: true, text: "Expired", title: `Expired ${FULL_DATE.format(at)}` };
  let text;
  if (left < 60) text = "in under 1 min";
  else if (left < 3600) text = `in ${Math.floor(left / 60)} min`;
  else if (left < 86400) text = `in ${Math.floor(left / 3600)} h`;
  else text = (at.getFullYear() === now.getFullYear() ? THIS_YEAR : OTHER_YEAR).format(at);
  return { expired: false, text, title };
}
