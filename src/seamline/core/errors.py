"""One error hierarchy for every layer.

Each error carries the HTTP status and the OpenAI-style ``type``/``code`` it maps to, so the
HTTP faces turn any of them into ``{"error": {...}}`` in one handler and the CLI prints
``message`` on one line. No stage builds an error response by hand.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SeamlineError(Exception):
    """Base of every error a user can cause or see."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    default_code: ClassVar[str] = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"type", "code", "message", "param"}}``."""
        return {
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
            }
        }


class InvalidInput(SeamlineError):
    """The caller sent something malformed: bad YAML, unknown variable, invalid schema."""

    default_code = "invalid_input"


class ContentBlocked(SeamlineError):
    """A guard policy blocked the call (OpenAI's code for content it refuses)."""

    default_code = "content_policy_violation"


class NotFound(SeamlineError):
    status = 404
    type = "not_found_error"
    default_code = "not_found"


class MethodNotAllowed(SeamlineError):
    status = 405
    default_code = "method_not_allowed"


class Conflict(SeamlineError):
    """The state changed under the caller, e.g. an alias moved since it was read."""

    status = 409
    type = "conflict_error"
    default_code = "conflict"


class AuthenticationFailed(SeamlineError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(SeamlineError):
    """Authenticated, but not allowed: missing scope, separation of duties, failed gate."""

    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class Unavailable(SeamlineError):
    """A dependency (the database, the registry server) cannot be reached."""

    status = 503
    type = "api_error"
    default_code = "unavailable"


class PayloadTooLarge(SeamlineError):
    status = 413
    default_code = "payload_too_large"


class RateLimited(SeamlineError):
    """Over a requests or tokens per minute limit; carries ``Retry-After``."""

    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceeded(SeamlineError):
    status = 429
    type = "insufficient_quota"
    default_code = "budget_exceeded"


class InternalError(SeamlineError):
    """A bug of ours: the answer names the request id, never a traceback."""

    status = 500
    type = "api_error"
    default_code = "internal_error"


class UpstreamFailed(SeamlineError):
    """The model provider failed after retries and fallbacks."""

    status = 502
    type = "api_error"
    default_code = "upstream_error"


class UpstreamTimeout(UpstreamFailed):
    status = 504
    default_code = "upstream_timeout"
