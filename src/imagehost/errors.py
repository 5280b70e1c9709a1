"""Error types with their HTTP status and stable code, and the one place that renders them.

Handlers and domain modules raise these; `server` turns them into responses. Each library's own
exceptions are translated into these where the library is imported, so nothing above that module
sees a third-party exception type.
"""

import json


class ApiError(Exception):
    """A refusal the client should see: status, machine-readable code, human sentence."""

    status = 500
    code = "internal_error"
    detail = "Something went wrong on our side."

    def __init__(self, detail: str | None = None, *, code: str | None = None, headers=None):
        super().__init__(detail or self.detail)
        if detail:
            self.detail = detail
        if code:
            self.code = code
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    status, code, detail = 400, "bad_request", "The request could not be understood."


class Unauthorized(ApiError):
    status, code, detail = 401, "auth_required", "This needs the admin key or a delete token."


class Forbidden(ApiError):
    status, code, detail = 403, "forbidden", "The key or token given does not allow this."


class NotFound(ApiError):
    status, code, detail = 404, "not_found", "There is nothing here."


class MethodNotAllowed(ApiError):
    status, code, detail = 405, "method_not_allowed", "This method is not allowed here."


class PayloadTooLarge(ApiError):
    status, code, detail = 413, "too_large", "The upload is larger than the size limit."


class UnsupportedImage(ApiError):
    status, code, detail = 415, "unsupported_type", "This is not an image type we accept."


class ImageRejected(ApiError):
    """The bytes are an allowed format but cannot be stored: too many pixels, frames, corrupt."""

    status, code, detail = 422, "invalid_image", "The image could not be processed."


class ServiceUnavailable(ApiError):
    status, code, detail = 503, "unavailable", "The service is busy; try again shortly."


class StorageFull(ApiError):
    status, code, detail = 507, "storage_full", "The server has no space left for images."


class ConfigError(Exception):
    """A bad setting: start-up stops with this one line."""


def error_body(code: str, detail: str) -> bytes:
    """The JSON error shape every refusal uses: {"detail": ..., "code": ...}."""
    return json.dumps({"detail": detail, "code": code}).encode()
