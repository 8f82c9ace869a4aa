"""Every error the sidecar reports.

Each error carries a stable wire `code` and a human `message`; the mapping to HTTP statuses lives
at the edge, in `cronium.sidecar.app`. Messages never contain a token or another secret.
"""
from __future__ import annotations


class SettingsError(ValueError):
    """The settings document is missing, malformed or invalid (the message names the field)."""


class SidecarError(Exception):
    """Base of the errors answered to a client: `code` is the wire error code."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationError(SidecarError):
    """No token, or a token that is malformed, badly signed, expired or not for this audience."""

    code = "unauthorized"


class ExecutionMismatchError(SidecarError):
    """A valid token used for another execution than the path's or this sidecar's."""

    code = "forbidden"


class InvalidRequestError(SidecarError):
    """The request body or a path parameter is invalid; the message says what is wrong."""

    code = "invalid_request"


class VariableNotFoundError(SidecarError):
    """The variable is not set in this execution's namespace."""

    code = "variable_not_found"


class VersionConflictError(SidecarError):
    """`If-Match` named another version than the variable's current one (`current`; 0 = absent)."""

    code = "version_conflict"

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message)
        self.current = current


class QuotaExceededError(SidecarError):
    """A variable write would exceed a quota of the namespace; the message names the limit and its config key."""

    code = "quota_exceeded"


class UnknownToolError(SidecarError):
    """No registered tool provides the requested tool/action pair."""

    code = "unknown_tool"


class RateLimitedError(SidecarError):
    """Too many requests, or too many failed authentication attempts; retry after `retry_after` s."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailableError(SidecarError):
    """The store (Redis) cannot be reached or refused the command."""

    code = "store_unavailable"


class ToolFailedError(SidecarError):
    """A tool action raised; the message is the tool's own."""

    code = "tool_failed"


class ToolLoadError(SidecarError):
    """The tool plugins could not be loaded or registered conflicting tools."""

    code = "tool_plugins_failed"
