"""The error-code catalogue: one class per code with its status and default sentence.

Handlers and domain modules raise these by name; `messages.Response.error` renders them. Each
library's own exceptions are translated into these where the library is imported, so nothing
above that module sees a third-party exception type. Everything else that spells a code — the
nginx template's JSON error bodies, the README's status table, the frontend's retryable codes —
is rendered from CODES or checked against it by tests/test_errors.py.
"""

import json


class ApiError(Exception):
    """A refusal the client should see: status, machine-readable code, human sentence.

    `retryable`: the same request may work later (the frontend offers "Try again").
    `nginx_only`: sent by the nginx front, never by the Python server.
    """

    status = 500
    code = "internal_error"
    detail = "Something went wrong on our side."
    retryable = True
    nginx_only = False

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.detail)
        if detail:
            self.detail = detail
        self.headers = dict(headers or {})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:  # a subclass that only groups others names no new code
            if cls.code in CODES:
                raise TypeError(f"error code {cls.code!r} is defined twice")
            CODES[cls.code] = cls


CODES: dict[str, type[ApiError]] = {ApiError.code: ApiError}


# --- 400: the request is not one we can read ------------------------------------------------
class BadRequest(ApiError):
    status, code, detail = 400, "bad_request", "The request could not be understood."
    retryable = False


class BadPath(BadRequest):
    code, detail = "bad_path", "The request target must be a path."


class BadFraming(BadRequest):
    code, detail = "bad_framing", "Unsupported or ambiguous body framing."


class BadLength(BadRequest):
    code, detail = "bad_length", "Content-Length is not a number."


class BadChunked(BadRequest):
    code, detail = "bad_chunked", "Bad chunked encoding."


class Incomplete(BadRequest):
    code, detail = "incomplete", "The request body ended too early."


class InvalidParameter(BadRequest):
    code, detail = "invalid_parameter", "A query parameter is not valid."


class InvalidBody(BadRequest):
    code, detail = "invalid_body", "The request body is not the JSON this needs."


class InvalidExpiry(BadRequest):
    code, detail = "invalid_expiry", "expires_in is not a lifetime this server accepts."


class InvalidMultipart(BadRequest):
    code, detail = "invalid_multipart", "The multipart body is malformed."


class MissingFile(BadRequest):
    code, detail = "missing_file", "The form has no file; send it in the field 'file'."


class EmptyFile(BadRequest):
    code, detail = "empty_file", "The uploaded file is empty."


class TooManyFiles(BadRequest):
    code, detail = "too_many_files", "Send exactly one file per upload."


class TooManyParts(BadRequest):
    code, detail = "too_many_parts", "The form has too many fields."


# --- 401 / 403: rights -----------------------------------------------------------------------
class Unauthorized(ApiError):
    status, code, detail = 401, "auth_required", "This needs the admin key or a delete token."
    retryable = False


class Forbidden(ApiError):
    status, code, detail = 403, "forbidden", "The key or token given does not allow this."
    retryable = False


# --- 404 / 405: no such thing ----------------------------------------------------------------
class NotFound(ApiError):
    status, code, detail = 404, "not_found", "There is nothing here."
    retryable = False


class MethodNotAllowed(ApiError):
    status, code, detail = 405, "method_not_allowed", "This method is not allowed here."
    retryable = False


# --- 413 / 414 / 431: too big ----------------------------------------------------------------
class PayloadTooLarge(ApiError):
    status, code, detail = 413, "too_large", "The upload is larger than the size limit."
    retryable = False


class UriTooLong(ApiError):
    status, code, detail = 414, "uri_too_long", "The request line is too long."
    retryable = False


class HeadersTooLarge(ApiError):
    status, code, detail = 431, "headers_too_large", "The request headers are too large."
    retryable = False


# --- 415 / 422: not an image we keep ---------------------------------------------------------
class UnsupportedImage(ApiError):
    status, code, detail = 415, "unsupported_type", "This is not an image type we accept."
    retryable = False


class UnsupportedMediaType(UnsupportedImage):
    code = "unsupported_media_type"
    detail = (
        "Send the image as multipart/form-data (field 'file') or as the body with "
        "Content-Type: image/*."
    )


class ImageRejected(ApiError):
    """The bytes are an allowed format but cannot be stored: too many pixels, frames, corrupt."""

    status, code, detail = 422, "invalid_image", "The image could not be processed."
    retryable = False


class TooManyPixels(ImageRejected):
    code, detail = "too_many_pixels", "The image has more pixels than this server accepts."


class TooManyFrames(ImageRejected):
    code, detail = "too_many_frames", "The animation has more frames than this server accepts."


class CorruptImage(ImageRejected):
    code, detail = "corrupt_image", "The image is truncated or corrupt."


# --- 429: too many, too fast ------------------------------------------------------------------
class RateLimited(ApiError):
    """Over UPLOAD_RATE (limits.py in `serve`, limit_req in nginx); Retry-After says when."""

    status, code, detail = 429, "rate_limited", "Too many uploads from this address; slow down."


class TooManyUploads(RateLimited):
    """Over UPLOAD_CONNECTIONS uploads at once from one address (limit_conn in nginx)."""

    code, detail = "too_many_uploads", "Too many uploads at once from this address."


# --- 5xx: our side ---------------------------------------------------------------------------
class BadGateway(ApiError):
    status, code, detail = 502, "bad_gateway", "No worker could answer; try again shortly."
    nginx_only = True


class ServiceUnavailable(ApiError):
    status, code, detail = 503, "unavailable", "The service is busy; try again shortly."


class GatewayTimeout(ApiError):
    status, code, detail = 504, "gateway_timeout", "A worker took too long to answer."
    nginx_only = True


class FormatNotOffered(ApiError):
    """oEmbed's own rule (oembed.com, 2.3.4): a format the provider does not offer is a 501."""

    status, code, detail = 501, "format_not_offered", "Only format=json is offered."
    retryable = False


class HttpVersionNotSupported(ApiError):
    status, code, detail = 505, "http_version_not_supported", "HTTP version not supported."
    retryable = False


class StorageFull(ApiError):
    status, code, detail = 507, "storage_full", "The server has no space left for images."
    retryable = False


class StorageQuota(ApiError):
    """MAX_STORAGE_MB reached: refused before the image is stored."""

    status, code = 507, "storage_quota"
    detail = "This server's storage quota is used up; nothing more can be stored until images go."
    retryable = False


class ConfigError(Exception):
    """A bad setting: start-up stops with this one line."""


def error_body(code: str, detail: str) -> bytes:
    """The JSON error shape every refusal uses: {"detail": ..., "code": ...}."""
    return json.dumps({"detail": detail, "code": code}).encode()
