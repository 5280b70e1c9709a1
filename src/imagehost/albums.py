"""Albums through the API: several images shared under one link (the page is pages.py).

Making an album proves the right to each image in it — its delete token, or the admin key —
so nobody can put someone else's image under a title of theirs. The album gets a token of its
own, handed out once like an image's; it (or the admin key) changes or deletes the album.
Handlers take the api.App, like api's own.
"""

import json
import logging

from . import rights, uploads
from .catalog.base import Album, AlbumRow, ImageRow, timestamp
from .errors import Forbidden, InvalidBody, NotFound, PayloadTooLarge
from .messages import Request, Response
from .store.keys import new_image_id
from .views import album_json

log = logging.getLogger("imagehost.albums")

MAX_IMAGES = 500  # per album: a page of thumbnails a browser still shows at once
MAX_TITLE = 200  # characters
MAX_BODY_BYTES = 256 * 1024  # 500 names and tokens take ~40 KB


def create_album(app, request: Request) -> Response:
    body = _json_body(request)
    _only(body, {"title", "images"})
    title = _title(body.get("title", ""))
    admin = rights.is_admin(request.header("Authorization"), app.admin_key)
    rows = _proven_images(app, body.get("images"), admin)
    token, token_hash = rights.new_delete_token()
    row = AlbumRow(new_image_id(), title, timestamp(), token_hash)
    if not app.catalog.add_album(row, [r.id for r in rows]):
        raise NotFound("An image of the album was deleted meanwhile; nothing was made.")
    album = app.catalog.album(row.id)
    log.info("album %s made", row.id, extra={"fields": {"rid": request.request_id}})
    answer = {**album_json(album, request.base_url), "delete_token": token}
    return Response.json(answer, 201, {"Location": answer["api_url"]})


def get_album(app, request: Request) -> Response:
    return Response.json(album_json(_album(app, request), request.base_url))


def change_album(app, request: Request) -> Response:
    album = _album(app, request)
    _check_album_right(app, request, album)
    body = _json_body(request)
    _only(body, {"title", "add", "remove", "order"})
    title = _title(body["title"]) if "title" in body else None
    ids = [image.id for image in album.images]
    by_name = {image.filename: image.id for image in album.images}
    if "remove" in body:
        names = _names(body["remove"], "remove")
        ids = [i for i in ids if i not in {by_name.get(n) for n in names}]
    if "add" in body:
        admin = rights.is_admin(request.header("Authorization"), app.admin_key)
        added = _proven_images(app, body["add"], admin, allow_empty=True)
        ids += [r.id for r in added if r.id not in ids]
        by_name.update({r.filename: r.id for r in added})
    if "order" in body:
        order = [by_name.get(n) for n in _names(body["order"], "order")]
        if sorted(order, key=str) != sorted(ids, key=str):
            raise InvalidBody("'order' must name each of the album's images exactly once.")
        ids = order
    if len(ids) > MAX_IMAGES:
        raise InvalidBody(f"An album holds at most {MAX_IMAGES} images.")
    changed = ids if any(k in body for k in ("add", "remove", "order")) else None
    if not app.catalog.change_album(album.row.id, title, changed):
        raise NotFound("There is no album with this id.")
    return Response.json(album_json(app.catalog.album(album.row.id), request.base_url))


def delete_album(app, request: Request) -> Response:
    album = _album(app, request)
    _check_album_right(app, request, album)
    if not app.catalog.remove_album(album.row.id):
        raise NotFound("There is no album with this id.")
    log.info("album %s deleted", album.row.id, extra={"fields": {"rid": request.request_id}})
    return Response(204)


def _album(app, request: Request) -> Album:
    album = app.catalog.album(request.params["album_id"])
    if album is None:
        raise NotFound("There is no album with this id.")
    return album


def _check_album_right(app, request: Request, album: Album) -> None:
    """The album's own token (X-Delete-Token) or the admin key; 401 / 403 otherwise."""
    rights.check_delete(
        request.header("Authorization"),
        request.header("X-Delete-Token"),
        app.admin_key,
        album.row.delete_token_hash,
    )


def _proven_images(app, entries, admin: bool, allow_empty: bool = False) -> list[ImageRow]:
    """The images named in `entries` ([{"filename", "delete_token"}], the token optional for
    the admin), once each, in order; 404 for one that does not exist, 403 for one whose token
    is missing or wrong."""
    if not isinstance(entries, list) or not (allow_empty or entries):
        raise InvalidBody('\'images\' must be a list of {"filename", "delete_token"} objects.')
    if len(entries) > MAX_IMAGES:
        raise InvalidBody(f"An album holds at most {MAX_IMAGES} images.")
    rows: dict[str, ImageRow] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise InvalidBody("Each image is an object with a 'filename' (and 'delete_token').")
        token = entry.get("delete_token")
        if token is not None and not isinstance(token, str):
            raise InvalidBody("A 'delete_token' is a string.")
        row = app.catalog.get(entry["filename"])
        if row is None:
            raise NotFound(f"There is no image named {entry['filename']!r}.")
        if not admin:
            if not token:
                raise Forbidden(f"Adding {row.filename} needs its delete token or the admin key.")
            rights.check_delete(None, token, app.admin_key, row.delete_token_hash)
        rows.setdefault(row.filename, row)
    return list(rows.values())


def _json_body(request: Request) -> dict:
    """The request's JSON object, at most MAX_BODY_BYTES; InvalidBody when it is not one."""
    data = bytearray()
    while chunk := request.body.read():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The body is larger than {MAX_BODY_BYTES // 1024} KB.")
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidBody("The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidBody("The body is a JSON object.")
    return value


def _only(body: dict, known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidBody(f"Unknown field(s): {', '.join(unknown)}.")


def _title(value) -> str:
    if not isinstance(value, str) or len(value) > MAX_TITLE:
        raise InvalidBody(f"'title' is a string of at most {MAX_TITLE} characters.")
    return uploads.display_text(" ".join(value.split()), MAX_TITLE)


def _names(value, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidBody(f"'{field}' is a list of image file names.")
    return value
