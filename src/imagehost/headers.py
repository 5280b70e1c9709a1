"""Security and caching headers for each kind of response, written once for `serve` and nginx.

`api` adds these to its responses; `front` renders them into the nginx template as add_header
lines (@@HEADERS_PAGE@@ …), so the two fronts cannot disagree. tests/test_headers.py requests
each kind from both and compares them name by name.
"""

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
# An image opened directly is a document of its own: no script, no plugin, no same origin.
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

# The frontend's pages and files.
PAGE = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Stored originals and thumbnails: the type comes from the extension we chose, never sniffed.
IMAGE = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": IMAGE_CSP,
}
# API answers (JSON, including every error): they carry user-chosen names, so never sniffed.
API = {"X-Content-Type-Options": "nosniff"}

# Caching, per kind. Image names never change content; pages are not fingerprinted, so they
# are revalidated (ETag / Last-Modified) on every use.
IMAGE_CACHE = "public, max-age=31536000, immutable"
PAGE_CACHE = "no-cache"
ERROR_CACHE = "no-store"
# Share and album pages (pages.py) are rendered per request and fetched often by bots: kept
# this long by nginx and browsers, so a deleted image's page is gone within twice this.
SHARED_PAGE_MAX_AGE_S = 10


def shared_page_cache(max_age: int = SHARED_PAGE_MAX_AGE_S) -> str:
    """A shared page's Cache-Control; less than the usual age for an image expiring sooner."""
    return f"public, max-age={max_age}" if max_age > 0 else "no-store"


SHARED_PAGE_CACHE = shared_page_cache()


def nginx_lines(headers: dict[str, str], indent: str) -> str:
    """`add_header` directives for `headers`, sent on every status (`always`)."""
    lines = []
    for name, value in headers.items():
        if '"' in value or "$" in value or "\\" in value:
            raise ValueError(f"header {name} cannot be written into nginx.conf")
        lines.append(f'{indent}add_header {name} "{value}" always;')
    return "\n".join(lines).lstrip()
