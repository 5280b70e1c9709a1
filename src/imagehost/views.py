"""Images and albums as clients see them: their JSON and every URL handed out for them.

One place builds the URLs, so the API's answers, the share and album pages, oEmbed and the
ShareX file cannot disagree on where an image lives. `base` is the request's base URL
(PUBLIC_URL, or the Host the client used).
"""

from .catalog.base import Album, ImageRow
from .store.keys import thumbnail_key


def image_url(base: str, row: ImageRow) -> str:
    return f"{base}/images/{row.filename}"


def thumbnail_url(base: str, filename: str) -> str:
    """The thumbnail of the stored original `filename`."""
    return f"{base}/images/{thumbnail_key(filename)}"


def share_url(base: str, image_id: str) -> str:
    """The image's page, with its link preview (pages.py)."""
    return f"{base}/i/{image_id}"


def album_url(base: str, album_id: str) -> str:
    return f"{base}/a/{album_id}"


def delete_page_url(base: str, filename: str, delete_token: str) -> str:
    """The static delete page (web/delete.html) with the name and token in the fragment: a
    browser never sends a fragment, so the token stays out of every access log and Referer."""
    return f"{base}/delete.html#{filename}:{delete_token}"


def fit_within(width: int, height: int, max_width: int, max_height: int | None = None) -> tuple:
    """(width, height) scaled down, never up, to fit max_width × max_height (a square box
    when max_height is not given), as the thumbnail is made."""
    box_h = max_width if max_height is None else max_height
    scale = min(1.0, max_width / width, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def size_in_words(count: int) -> str:
    """Bytes as people read them, in powers of 1024 as the upload page shows them: 812 bytes,
    45.3 KB, 1.2 MB, 3.4 GB."""
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def image_json(row: ImageRow, base: str) -> dict:
    return {
        "id": row.id,
        "filename": row.filename,
        "url": image_url(base, row),
        "thumbnail_url": thumbnail_url(base, row.filename),
        "share_url": share_url(base, row.id),
        "delete_url": f"{base}/api/upload/{row.filename}",
        "original_name": row.original_name,
        "content_type": row.content_type,
        "size": row.size,
        "width": row.width,
        "height": row.height,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
    }


def album_json(album: Album, base: str) -> dict:
    return {
        "id": album.row.id,
        "title": album.row.title,
        "url": album_url(base, album.row.id),
        "api_url": f"{base}/api/albums/{album.row.id}",
        "created_at": album.row.created_at,
        "count": len(album.images),
        "images": [image_json(row, base) for row in album.images],
    }
