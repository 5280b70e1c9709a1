"""The OpenAPI 3.1 description of the API, built from the route table so the two cannot drift."""

from . import formats
from .config import Settings
from .images import THUMBNAIL_MAX_SIDE

_ERROR = {"$ref": "#/components/schemas/Error"}
_IMAGE = {"$ref": "#/components/schemas/Image"}
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


def _operations(settings: Settings) -> dict[tuple[str, str], dict]:
    auth = [{"adminKey": []}]
    upload_security = auth if settings.uploads == "key" else [{}, *auth]
    list_security = auth if settings.listing == "key" else [{}, *auth]
    return {
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
                            "properties": {"file": {"type": "string", "format": "binary"}},
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
                }
            ],
            "responses": {
                "201": _json(
                    "Stored",
                    {
                        "allOf": [
                            _IMAGE,
                            {
                                "type": "object",
                                "required": ["delete_token"],
                                "properties": {"delete_token": {"type": "string"}},
                            },
                        ]
                    },
                ),
                **_errors(400, 401, 403, 413, 415, 422, 503, 507),
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
            "security": [{"deleteToken": []}, *auth],
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
                    "description": f"WebP thumbnail, longest side {THUMBNAIL_MAX_SIDE} px",
                    "content": {
                        formats.THUMBNAIL_TYPE: {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                **_errors(404),
            },
        },
    }


def _object(properties: dict) -> dict:
    """A JSON object whose every listed property is always present."""
    return {"type": "object", "required": list(properties), "properties": properties}


_STRINGS = {"type": "array", "items": {"type": "string"}}
SCHEMAS = {
    "Error": _object({"detail": {"type": "string"}, "code": {"type": "string"}}),
    "Image": _object(
        {
            "id": {"type": "string"},
            "filename": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "thumbnail_url": {"type": "string", "format": "uri"},
            "delete_url": {"type": "string", "format": "uri"},
            "original_name": {"type": "string"},
            "content_type": {
                "type": "string",
                "enum": [f.content_type for f in formats.FORMATS.values()],
            },
            "size": {"type": "integer", "minimum": 1},
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "created_at": {"type": "string", "format": "date-time"},
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
                "items": {"enum": [f.content_type for f in formats.FORMATS.values()]},
            },
            "allowed_extensions": _STRINGS,
            "uploads": {"enum": ["open", "key"]},
            "listing": {"enum": ["public", "key"]},
        }
    ),
}


def spec(routes, settings: Settings, base_url: str) -> dict:
    """The document for these routes; routes without a summary (frontend files) are left out."""
    operations = _operations(settings)
    paths: dict[str, dict] = {}
    for route in routes:
        if not route.summary:
            continue
        op = {"summary": route.summary, **operations[(route.method, route.pattern)]}
        paths.setdefault(route.pattern, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Image host",
            "version": "1.0.0",
            "description": "Upload, list, share and delete images.",
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "adminKey": {"type": "http", "scheme": "bearer"},
                "deleteToken": {"type": "apiKey", "in": "header", "name": "X-Delete-Token"},
            },
        },
    }
