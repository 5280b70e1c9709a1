"""The names of stored images, the same in every store: `{id}.{ext}` and its thumbnail
`thumbs/{id}.jpg` (a JPEG original's) or `thumbs/{id}.webp` (any other's).

A local folder and a bucket use the same keys, so moving between them never touches the
catalog.
"""

import re
import secrets

from .. import formats

ID_BYTES = 12  # 16 URL-safe characters, 96 random bits
# \Z, not $: `$` also matches before a trailing newline.
IMAGE_NAME = re.compile(rf"({formats.ID_PATTERN})\.({'|'.join(formats.EXTENSIONS)})\Z")
THUMB_NAME = re.compile(rf"({formats.ID_PATTERN})\.({'|'.join(formats.THUMBNAILS)})\Z")
THUMBS = "thumbs"  # the folder (local) or key prefix (S3) of the thumbnails


def new_image_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def image_id_of(filename: str) -> str | None:
    """The id in a stored name, or None when `filename` is not a name we could have made."""
    match = IMAGE_NAME.match(filename)
    return match.group(1) if match else None


def checked_image_name(filename: str) -> str:
    """`filename` itself when it is a stored image name; ValueError otherwise."""
    if not IMAGE_NAME.match(filename):
        raise ValueError(f"not a stored image name: {filename!r}")
    return filename


def thumbnail_name(filename: str) -> str:
    """The thumbnail's name inside THUMBS of the stored original `filename` (`{id}.jpg` or
    `{id}.webp`, by the original's format); ValueError for a name we could not have made."""
    image_id, ext = IMAGE_NAME.match(checked_image_name(filename)).groups()
    return f"{image_id}.{formats.thumbnail_of(ext).ext}"


def thumbnail_key(filename: str) -> str:
    """The thumbnail's key in a bucket, its path below IMAGES_DIR and in URLs: `thumbs/{name}`."""
    return f"{THUMBS}/{thumbnail_name(filename)}"


def thumbnail_names(filename: str) -> list[str]:
    """Every name a thumbnail of `filename` may have: its own, then for a JPEG original the
    WebP name all thumbnails had before JPEG ones got JPEG thumbnails (an older store's, until
    `imagehost check` or its first request remakes it; deletes remove both)."""
    own = thumbnail_name(filename)
    legacy = f"{IMAGE_NAME.match(filename).group(1)}.webp"
    return [own] if own == legacy else [own, legacy]


def checked_thumbnail_name(name: str) -> str:
    """`name` itself when it is a thumbnail name (inside THUMBS); ValueError otherwise."""
    if not THUMB_NAME.match(name):
        raise ValueError(f"not a thumbnail name: {name!r}")
    return name


def thumbnail_type(name: str) -> str:
    """The Content-Type of the thumbnail `name` (from its extension); ValueError for a bad one."""
    return formats.THUMBNAILS[THUMB_NAME.match(checked_thumbnail_name(name)).group(2)].content_type


def content_type_of(filename: str) -> str:
    """The Content-Type a stored original is served with, from its extension."""
    return formats.BY_EXT[checked_image_name(filename).rsplit(".", 1)[1]].content_type
