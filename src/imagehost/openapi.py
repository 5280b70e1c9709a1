"""The OpenAPI 3.1 description of the API, built from the route table so the two cannot drift."""

from . import formats
from .config import Settings
from .images import THUMBNAIL_MAX_SIDE

_ERROR = {"$ref": "#/components/schemas/Error"}
_IMAGE = {"$ref": "#/components/schemas/Image"}
_ALBUM = {"$ref": "#/components/schemas/Album"}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_ALBUM_ID = {
    "name": "album_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{formats.ID_PATTERN}$"},
}
# any id, so that a mistyped link gets the friendly page (api.PARAMS)
_PAGE_ID = {
    "name": "page_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/]{1,128}$"},
}
# What proves the right to an image (adding it to an album): its delete token, or the admin key.
_IMAGE_PROOF = {
    "type": "object",
    "required": ["filename"],
    "additionalProperties": False,
    "properties": {"filename": {"type": "string"}, "delete_token": {"type": "string"}},
}
_TITLE = {"type": "string", "maxLength": 200}
_EXPIRES_IN = {
    "type": "string",
    "description": "how long to keep the image: seconds, an ISO 8601 duration (PT1H, P1D, P1W,"
    " P1M) or never; over MAX_EXPIRY is refused. Default: DEFAULT_EXPIRY",
    "examples": ["3600", "P1D", "never"],
}
_STRINGS = {"type": "array", "items": {"type": "string"}}
# operationId and tag of each route: what generated clients name their methods and group by
NAMES = {
    ("GET", "/api/health"): ("getHealth", "service"),
    ("GET", "/api/config"): ("getConfig", "service"),
    ("GET", "/api/openapi.json"): ("getOpenApi", "service"),
    ("GET", "/api/metrics"): ("getMetrics", "service"),
    ("GET", "/api/sharex.sxcu"): ("getShareXUploader", "sharing"),
    ("GET", "/api/oembed"): ("getOEmbed", "sharing"),
    ("POST", "/api/upload/"): ("uploadImage", "images"),
    ("GET", "/api/upload/"): ("listImages", "images"),
    ("GET", "/api/upload/{filename}"): ("getImage", "images"),
    ("DELETE", "/api/upload/{filename}"): ("deleteImage", "images"),
    ("POST", "/api/albums"): ("createAlbum", "albums"),
    ("GET", "/api/albums/{album_id}"): ("getAlbum", "albums"),
    ("PATCH", "/api/albums/{album_id}"): ("changeAlbum", "albums"),
    ("DELETE", "/api/albums/{album_id}"): ("deleteAlbum", "albums"),
    ("GET", "/i/{page_id}"): ("getSharePage", "sharing"),
    ("GET", "/a/{page_id}"): ("getAlbumPage", "sharing"),
    ("GET", "/images/{filename}"): ("getImageFile", "files"),
    ("GET", "/images/thumbs/{thumbname}"): ("getThumbnailFile", "files"),
}
TAGS = [
    {"name": "images", "description": "Upload, list, look up and delete images"},
    {"name": "albums", "description": "Several images shared under one link"},
    {"name": "sharing", "description": "Share pages, link previews, screenshot tools"},
    {"name": "files", "description": "The stored images and thumbnails"},
    {"name": "service", "description": "Health, settings and this document"},
]
_FILENAME = {
    "name": "filename",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{formats.IMAGE_NAME_PATTERN}$"},
}


def _errors(*statuses: int) -> dict:
    return {
        str(s): {"description": "Error", "content": {"application/json": {"schema": _ERROR}}}
        for s in statuses
    }


def _json(description: str, schema: dict, headers: dict | None = None) -> dict:
    out = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _html_page(description: str) -> dict:
    return {
        "parameters": [_PAGE_ID],
        "responses": {
            "200": {"description": description, "content": _HTML},
            "404": {
                "description": "A friendly page saying nothing is here (JSON for a path that"
                " is no page id at all)",
                "content": {**_HTML, "application/json": {"schema": _ERROR}},
            },
            **_errors(503),
        },
    }


def _operations(settings: Settings) -> dict[tuple[str, str], dict]:
    auth = [{"adminKey": []}]
    upload_security = auth if settings.uploads == "key" else [{}, *auth]
    list_security = auth if settings.listing == "key" else [{}, *auth]
    owner = [{"deleteToken": []}, *auth]  # an image's or album's own token, or the admin key
    return {
        ("GET", "/api/metrics"): {
            "security": [{"metricsToken": []}, *auth],
            "description": "The Prometheus text format, summed over this node's workers"
            " (each node is scraped on its own). 404 with METRICS=false.",
            "responses": {
                "200": {
                    "description": "The metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(401, 403, 404),
            },
        },
        ("GET", "/api/sharex.sxcu"): {
            "security": [{}, *auth],
            "description": "A custom-uploader file ShareX imports by double-click. With"
            " UPLOADS=key it carries the admin key, when asked for with the key only.",
            "responses": {
                "200": _json("The .sxcu file", {"$ref": "#/components/schemas/ShareX"}),
            },
        },
        ("GET", "/api/oembed"): {
            "description": "oEmbed (type photo) for a share page, album page or image URL.",
            "parameters": [
                {
                    "name": "url",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                },
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["json"]},
                },
                *(
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100_000},
                    }
                    for name in ("maxwidth", "maxheight")
                ),
            ],
            "responses": {
                "200": _json("The embed", {"$ref": "#/components/schemas/OEmbed"}),
                **_errors(400, 404, 501, 503),
            },
        },
        ("POST", "/api/albums"): {
            "security": [{}, *auth],
            "description": "Each image is proven by its delete token (or the admin key). The"
            " answer holds the album's own delete token, handed out this once.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["images"],
                            "additionalProperties": False,
                            "properties": {
                                "title": _TITLE,
                                "images": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 500,
                                    "items": _IMAGE_PROOF,
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(
                    "Made",
                    {
                        "allOf": [
                            _ALBUM,
                            {
                                "type": "object",
                                "required": ["delete_token"],
                                "properties": {"delete_token": {"type": "string"}},
                            },
                        ]
                    },
                ),
                **_errors(400, 403, 404, 413, 503),
            },
        },
        ("GET", "/api/albums/{album_id}"): {
            "parameters": [_ALBUM_ID],
            "responses": {"200": _json("The album", _ALBUM), **_errors(404, 503)},
        },
        ("PATCH", "/api/albums/{album_id}"): {
            "security": owner,
            "description": "Any of: a new title; images to add (each proven as when making the"
            " album) or remove (by file name); the new order (every image's file name once).",
            "parameters": [_ALBUM_ID],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "title": _TITLE,
                                "add": {"type": "array", "items": _IMAGE_PROOF},
                                "remove": _STRINGS,
                                "order": _STRINGS,
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json("The changed album", _ALBUM),
                **_errors(400, 401, 403, 404, 413, 503),
            },
        },
        ("DELETE", "/api/albums/{album_id}"): {
            "security": owner,
            "description": "The album goes; its images stay.",
            "parameters": [_ALBUM_ID],
            "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 503)},
        },
        ("GET", "/i/{page_id}"): _html_page("The image's share page, with its link preview"),
        ("GET", "/a/{page_id}"): _html_page("The album's page, with its link preview"),
        ("GET", "/api/health"): {
            "responses": {"200": _json("Ready", {"type": "object"}), **_errors(503)},
        },
        ("GET", "/api/config"): {
            "responses": {
                "200": _json(
                    "Settings the upload page uses", {"$ref": "#/components/schemas/Config"}
                )
            },
        },
        ("GET", "/api/openapi.json"): {
            "responses": {"200": _json("This document", {"type": "object"})},
        },
        ("POST", "/api/upload/"): {
            "security": upload_security,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "expires_in": _EXPIRES_IN,
                            },
                        }
                    },
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "parameters": [
                {
                    "name": "X-Filename",
                    "in": "header",
                    "required": False,
                    "description": "original file name for a raw-body upload",
                    "schema": {"type": "string"},
                },
                {
                    "name": "X-Expires-In",
                    "in": "header",
                    "required": False,
                    "description": "the lifetime, as the form field expires_in (which wins)",
                    "schema": _EXPIRES_IN,
                },
            ],
            "responses": {
                "201": _json(
                    "Stored",
                    {
                        "allOf": [
                            _IMAGE,
                            {
                                "type": "object",
                                "required": ["delete_token", "delete_page_url"],
                                "properties": {
                                    "delete_token": {"type": "string"},
                                    "delete_page_url": {
                                        "type": "string",
                                        "description": "a page that deletes the image when"
                                        " opened; the token is in its fragment",
                                    },
                                },
                            },
                        ]
                    },
                ),
                **_errors(400, 401, 403, 413, 415, 422, 429, 503, 507),
            },
        },
        ("GET", "/api/upload/"): {
            "security": list_security,
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                },
                {
                    "name": "q",
                    "in": "query",
                    "required": False,
                    "description": "only images whose original name contains this (any case)",
                    "schema": {"type": "string", "maxLength": 200},
                },
            ],
            "responses": {
                "200": _json(
                    "Images, newest first",
                    {"type": "array", "items": _IMAGE},
                    {
                        "X-Total-Count": {"schema": {"type": "integer"}},
                        "ETag": {"schema": {"type": "string"}},
                        "Link": {"schema": {"type": "string"}, "description": 'rel="next" page'},
                    },
                ),
                "304": {"description": "Not modified since the ETag in If-None-Match"},
                **_errors(400, 401, 403, 503),
            },
        },
        ("GET", "/api/upload/{filename}"): {
            "parameters": [_FILENAME],
            "responses": {"200": _json("The image's metadata", _IMAGE), **_errors(404, 503)},
        },
        ("DELETE", "/api/upload/{filename}"): {
            "security": owner,
            "parameters": [_FILENAME],
            "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 503)},
        },
        ("GET", "/images/{filename}"): {
            "parameters": [_FILENAME],
            "responses": {
                "200": {
                    "description": "The image",
                    "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                **_errors(404),
            },
        },
        ("GET", "/images/thumbs/{thumbname}"): {
            "parameters": [
                {
                    "name": "thumbname",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": f"^{formats.THUMB_NAME_PATTERN}$"},
                }
            ],
            "responses": {
                "200": {
                    "description": f"The thumbnail, longest side {THUMBNAIL_MAX_SIDE} px: JPEG"
                    " for a JPEG original, WebP for the others; one that is missing is made"
                    " from its original on this request",
                    "content": {
                        t: {"schema": {"type": "string", "format": "binary"}}
                        for t in formats.THUMBNAIL_TYPES
                    },
                },
                **_errors(404),
            },
        },
    }


def _object(properties: dict) -> dict:
    """A JSON object whose every listed property is always present."""
    return {"type": "object", "required": list(properties), "properties": properties}


SCHEMAS = {
    "Error": _object({"detail": {"type": "string"}, "code": {"type": "string"}}),
    "Image": _object(
        {
            "id": {"type": "string"},
            "filename": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "thumbnail_url": {"type": "string", "format": "uri"},
            "share_url": {"type": "string", "format": "uri"},
            "delete_url": {"type": "string", "format": "uri"},
            "original_name": {"type": "string"},
            "content_type": {
                "type": "string",
                "enum": list(formats.STORED_TYPES),  # never image/heic: stored as JPEG
            },
            "size": {"type": "integer", "minimum": 1},
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "when it is gone; null: kept until deleted",
            },
        }
    ),
    "Config": _object(
        {
            "max_upload_bytes": {"type": "integer"},
            "max_upload_mb": {"type": "integer"},
            "max_image_pixels": {"type": "integer"},
            "allowed_formats": {"type": "array", "items": {"enum": list(formats.NAMES)}},
            "allowed_types": {
                "type": "array",
                "items": {"enum": list(formats.upload_types())},
            },
            "allowed_extensions": _STRINGS,
            "uploads": {"enum": ["open", "key"]},
            "listing": {"enum": ["public", "key"]},
            "sharex_url": {"type": "string"},
            "default_expiry": {"type": ["integer", "null"], "description": "seconds"},
            "max_expiry": {"type": ["integer", "null"], "description": "seconds"},
        }
    ),
    "Album": _object(
        {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "api_url": {"type": "string", "format": "uri"},
            "created_at": {"type": "string", "format": "date-time"},
            "count": {"type": "integer", "minimum": 0},
            "images": {"type": "array", "items": _IMAGE},
        }
    ),
    "OEmbed": _object(
        {
            "version": {"const": "1.0"},
            "type": {"const": "photo"},
            "title": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "provider_name": {"type": "string"},
            "provider_url": {"type": "string", "format": "uri"},
            "thumbnail_url": {"type": "string", "format": "uri"},
            "thumbnail_width": {"type": "integer"},
            "thumbnail_height": {"type": "integer"},
            "cache_age": {"type": "integer"},
        }
    ),
    "ShareX": {
        "type": "object",
        "required": ["Version", "RequestURL", "Body", "FileFormName", "URL", "DeletionURL"],
        "properties": {
            "Version": {"type": "string"},
            "Name": {"type": "string"},
            "DestinationType": {"type": "string"},
            "RequestMethod": {"const": "POST"},
            "RequestURL": {"type": "string", "format": "uri"},
            "Body": {"const": "MultipartFormData"},
            "FileFormName": {"const": "file"},
            "Headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "URL": {"type": "string"},
            "ThumbnailURL": {"type": "string"},
            "DeletionURL": {"type": "string"},
            "ErrorMessage": {"type": "string"},
        },
    },
}


def spec(routes, settings: Settings, base_url: str) -> dict:
    """The document for these routes; routes without a summary (frontend files) are left out."""
    operations = _operations(settings)
    paths: dict[str, dict] = {}
    for route in routes:
        if not route.summary:
            continue
        operation_id, tag = NAMES[(route.method, route.pattern)]
        op = {
            "operationId": operation_id,
            "tags": [tag],
            "summary": route.summary,
            **operations[(route.method, route.pattern)],
        }
        paths.setdefault(route.pattern, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Image host",
            "version": "1.0.0",
            "description": "Upload, list, share and delete images.",
        },
        "servers": [{"url": base_url}],
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ADMIN_KEY: lists with LISTING=key, uploads with"
                    " UPLOADS=key, deletes anything",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "METRICS_TOKEN: reads /api/metrics only (for scrapers)",
                },
                "deleteToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Delete-Token",
                    "description": "the token handed out once with an upload or an album",
                },
            },
        },
    }
