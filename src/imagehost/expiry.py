"""How long an upload lives: `expires_in` of a request, DEFAULT_EXPIRY and MAX_EXPIRY.

A lifetime is whole seconds ("3600") or an ISO 8601 duration ("PT1H", "P1D", "P1W", "P1M");
"never" (or an empty setting) is no expiry. Months and years are calendar ones, counted from
the moment the value is read (isodate does the parsing). The image's `expires_at` is fixed at
upload; from then on the catalog hides it and the sweeper removes it (sweeper.py).
"""

import datetime

import isodate

from .errors import InvalidExpiry

NEVER = "never"
LONGEST_S = 100 * 366 * 86400  # a sanity bound: "P1000Y" is a typo, not a wish


def parse(raw: str, now: datetime.datetime | None = None) -> int | None:
    """Seconds, or None for "never"; ValueError (with the reason) for anything else."""
    text = raw.strip()
    if text.lower() == NEVER:
        return None
    if text.isascii() and text.isdigit():
        seconds = int(text)
    else:
        try:
            duration = isodate.parse_duration(text)
        except (isodate.ISO8601Error, ValueError, OverflowError):
            raise ValueError(
                "must be whole seconds, an ISO 8601 duration (PT1H, P1D, P1W, P1M) or never"
            ) from None
        start = now or datetime.datetime.now(datetime.UTC)
        try:
            seconds = int(((start + duration) - start).total_seconds())
        except OverflowError:
            seconds = LONGEST_S + 1
    if not 1 <= seconds <= LONGEST_S:
        raise ValueError("must be at least 1 second and at most 100 years")
    return seconds


def describe(seconds: int | None) -> str:
    """A lifetime in words for messages: "never", "3600 s (1 h)"."""
    if seconds is None:
        return NEVER
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds} s ({seconds // size} {unit})"
    return f"{seconds} s"


def lifetime(requested: str | None, default: int | None, maximum: int | None) -> int | None:
    """The lifetime of one upload: what it asked for, else the default. Raises InvalidExpiry
    (400) for a value that is not one, or one over the maximum (never shortened silently)."""
    if requested is None or not requested.strip():
        return default
    try:
        seconds = parse(requested)
    except ValueError as exc:
        raise InvalidExpiry(f"expires_in {exc}.") from None
    if maximum is not None and (seconds is None or seconds > maximum):
        raise InvalidExpiry(
            f"expires_in is {describe(seconds)}; this server keeps uploads at most "
            f"{describe(maximum)} (MAX_EXPIRY)."
        )
    return seconds
