"""The names of stored images, the same in every store: `{id}.{ext}` and `thumbs/{id}.webp`.

A local folder and a bucket use the same keys, so moving between them never touches the
catalog.
"""

import re
import secrets

from .. import formats

ID_BYTES = 12  # 16 URL-safe characters, 96 random bits
# \Z, not $: `$` also matches before a trailing newline.
IMAGE_NAME = re.compile(rf"({formats.ID_PATTERN})\.({'|'.join(formats.EXTENSIONS)})\Z")
THUMB_NAME = re.compile(rf"({formats.ID_PATTERN})\.{formats.THUMBNAIL_EXT}\Z")
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


def thumbnail_name(image_id: str) -> str:
    """`{id}.webp`, the thumbnail's name inside THUMBS; ValueError for a bad id."""
    name = f"{image_id}.{formats.THUMBNAIL_EXT}"
    if not THUMB_NAME.match(name):
        raise ValueError(f"not an image id: {image_id!r}")
    return name


def content_type_of(filename: str) -> str:
    """The Content-Type a stored original is served with, from its extension."""
    return formats.BY_EXT[checked_image_name(filename).rsplit(".", 1)[1]].content_type
