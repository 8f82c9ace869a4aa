"""cronium runtime helper for Python jobs.

``import cronium`` inside a cronium job container, then::

    data = cronium.input()                      # the execution's input (any JSON value, or None)
    count = cronium.get_variable("count")       # None when the variable does not exist
    cronium.set_variable("count", (count or 0) + 1)
    cronium.set_condition(True)
    ctx = cronium.event()                       # {"executionId", "jobId", ..., "metadata"}
    cronium.output({"processed": 3})

The module talks to the runtime-API sidecar over HTTP (JSON in, JSON out). It needs only the
standard library and works on Python 3.9+.

Environment (read at the first call, never at import time):

    CRONIUM_RUNTIME_API      base URL of the runtime API (default ``http://runtime-api:8081``)
    CRONIUM_EXECUTION_TOKEN  the execution's token, sent as ``Authorization: Bearer <token>`` (required)
    CRONIUM_EXECUTION_ID     the execution id used in the URL paths (required)

Tuning knobs (optional; constructor arguments win over them):

    CRONIUM_HELPER_TIMEOUT   seconds to wait on each socket operation of a request (default 30; 0 = no limit)
    CRONIUM_HELPER_RETRIES   retries after the first attempt (default 3, so at most 4 attempts)
    CRONIUM_HELPER_BACKOFF   first retry delay in seconds; doubles on each retry (default 1)
    CRONIUM_DEBUG            when set (non-empty), log each request (method and path) to stderr

Behaviour:

- 5xx responses (except 501) and timeouts are retried with exponential backoff; every other
  error status (4xx) raises :class:`CroniumAPIError` at once with the server's ``message``.
- A connection that cannot be made (refused, unknown host) is retried the same way and then
  raises :class:`CroniumConnectionError` ("could not reach the runtime API at <url>"). A
  connection that breaks after the request was sent is retried only for idempotent calls
  (everything except :func:`execute_tool_action`).
- ``get_variable`` returns None for a missing variable (404) and for a stored null; 0, False and
  "" are returned as they are.
- The token never appears in an error message or a log line.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, AsyncIterable, AsyncIterator, Dict, Iterable, List, Optional, Tuple, Union

__version__ = "1.0.0"

__all__ = [
    "Cronium",
    "AsyncCronium",
    "CroniumError",
    "CroniumAPIError",
    "CroniumConflictError",
    "CroniumTimeoutError",
    "CroniumConnectionError",
    "CroniumConfigError",
    "input",
    "output",
    "get_variable",
    "set_variable",
    "get_variable_version",
    "increment_variable",
    "append_variable",
    "delete_variable",
    "set_condition",
    "event",
    "execute_tool_action",
    "send_email",
    "send_slack_message",
    "send_discord_message",
    "get_default",
]

DEFAULT_API_URL = "http://runtime-api:8081"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 30.0

logger = logging.getLogger("cronium.helper")
if os.environ.get("CRONIUM_DEBUG"):
    _debug_handler = logging.StreamHandler(sys.stderr)
    _debug_handler.setFormatter(logging.Formatter("cronium: %(message)s"))
    logger.addHandler(_debug_handler)
    logger.setLevel(logging.DEBUG)


# --------------------------------------------------------------------------------------------
# Errors


class CroniumError(Exception):
    """Base class of every error raised by the cronium helper."""


class CroniumConfigError(CroniumError):
    """The helper is not configured: a required CRONIUM_* environment variable is missing or invalid."""


class CroniumAPIError(CroniumError):
    """The runtime API answered with an error status (or ``success: false``).

    ``status_code`` is the HTTP status, ``message`` the server's human message, ``error_code``
    the server's machine-readable ``error`` field (when it sent one).
    """

    def __init__(self, status_code: int, message: str, error_code: Optional[str] = None, attempts: int = 1):
        self.status_code = status_code
        self.message = message
        self.error_code = error_code
        self.attempts = attempts
        text = f"API Error ({status_code}): {message}"
        if attempts > 1:
            text += f" (gave up after {attempts} attempts)"
        super().__init__(text)


class CroniumConflictError(CroniumAPIError):
    """409: a write with ``if_version`` found the variable at another version; nothing was written.
    Read it again (``get_variable_version``) and retry."""


class CroniumTimeoutError(CroniumError):
    """The runtime API did not answer in time (after all retries)."""


class CroniumConnectionError(CroniumError):
    """The runtime API could not be reached (connection refused, unknown host, connection reset)."""


# --------------------------------------------------------------------------------------------
# Internals

_NO_BODY = object()


class _Attempt(Exception):
    """One failed attempt; ``retry`` says whether another attempt may be made."""

    def __init__(self, error: CroniumError, retry: bool):
        super().__init__(str(error))
        self.error = error
        self.retry = retry


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value >= 0 else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if value >= 0 else default


def _quote_segment(segment: str) -> str:
    quoted = urllib.parse.quote(segment, safe="")
    # "." and ".." are dot-segments that URL normalisation would swallow.
    if quoted in (".", ".."):
        quoted = quoted.replace(".", "%2E")
    return quoted


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or key == "":
        raise CroniumError(f"variable key must be a non-empty string, got {key!r}")
    return key


def _dumps(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CroniumError(f"value is not JSON-serialisable: {exc}") from None


_TRUE_WORDS = {"true", "1", "yes", "on"}
_FALSE_WORDS = {"false", "0", "no", "off"}


def _added(key: str, current: Any, by: Union[int, float]) -> Union[int, float]:
    """The fallback of increment_variable for old sidecars (same rules as the runtime API's)."""
    if current is None:
        return by
    if isinstance(current, str) and current.strip().lstrip("-").replace(".", "", 1).isdigit():
        current = float(current) if "." in current else int(current)
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise CroniumError(f"increment_variable: variable '{key}' holds {type(current).__name__}, not a number")
    return current + by


def _appended(key: str, current: Any, item: Any, separator: str) -> Any:
    """The fallback of append_variable for old sidecars (same rules as the runtime API's)."""
    text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
    if current is None:
        return item
    if isinstance(current, list):
        return current + [item]
    if isinstance(current, dict):
        raise CroniumError(f"append_variable: variable '{key}' holds an object; cannot append to it")
    if isinstance(current, str):
        return text if current == "" else current + separator + text
    return json.dumps(current) + separator + text


def _to_condition(condition: Any) -> bool:
    if isinstance(condition, bool):
        return condition
    if isinstance(condition, str):
        word = condition.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise CroniumError(f"invalid condition {condition!r}: use True/False (or true/false, 1/0, yes/no, on/off)")
    if condition is None:
        return False
    return bool(condition)


class _Config:
    __slots__ = ("api_url", "token", "execution_id")

    def __init__(self, api_url: str, token: str, execution_id: str):
        self.api_url = api_url
        self.token = token
        self.execution_id = execution_id


# --------------------------------------------------------------------------------------------
# Client


class Cronium:
    """Client of the runtime API.

    Every argument defaults to its environment variable (see the module docstring). Creating a
    client never fails; a missing CRONIUM_EXECUTION_TOKEN / CRONIUM_EXECUTION_ID is reported
    (as :class:`CroniumConfigError`) by the first call that needs it.

    ``max_retries`` is the number of retries after the first attempt (0 disables retries);
    ``backoff`` the first retry delay in seconds, doubled on each further retry.
    """

    def __init__(
        self,
        api_url: Optional[str] = None,
        token: Optional[str] = None,
        execution_id: Optional[str] = None,
        timeout: Optional[float] = None,
        max_retries: Optional[int] = None,
        backoff: Optional[float] = None,
    ):
        self._api_url = api_url
        self._token = token
        self._execution_id = execution_id
        self._config_cache: Optional[_Config] = None
        self.timeout = float(timeout) if timeout is not None else _env_float("CRONIUM_HELPER_TIMEOUT", DEFAULT_TIMEOUT)
        self.max_retries = (
            int(max_retries) if max_retries is not None else _env_int("CRONIUM_HELPER_RETRIES", DEFAULT_MAX_RETRIES)
        )
        self.backoff = float(backoff) if backoff is not None else _env_float("CRONIUM_HELPER_BACKOFF", DEFAULT_BACKOFF)
        # Never go through an HTTP proxy: the runtime API is on the job's private network.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:  # never show the token
        return f"<Cronium api_url={self.api_url!r} execution_id={self.execution_id!r}>"

    # -- configuration -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        url = self._api_url if self._api_url is not None else os.environ.get("CRONIUM_RUNTIME_API", "")
        return (url.strip() or DEFAULT_API_URL).rstrip("/")

    @property
    def execution_id(self) -> Optional[str]:
        value = self._execution_id if self._execution_id is not None else os.environ.get("CRONIUM_EXECUTION_ID")
        return value or None

    def _config(self) -> _Config:
        if self._config_cache is not None:
            return self._config_cache
        token = self._token if self._token is not None else os.environ.get("CRONIUM_EXECUTION_TOKEN", "")
        execution_id = self.execution_id or ""
        missing = []
        if not token:
            missing.append("CRONIUM_EXECUTION_TOKEN")
        if not execution_id:
            missing.append("CRONIUM_EXECUTION_ID")
        if missing:
            names = " and ".join(missing)
            verb = "is" if len(missing) == 1 else "are"
            raise CroniumConfigError(
                f"{names} {verb} not set: the cronium helper needs CRONIUM_EXECUTION_TOKEN and "
                f"CRONIUM_EXECUTION_ID to call the runtime API (cronium sets them in job containers)"
            )
        if any(c in token for c in "\r\n\0") or not token.isascii():
            raise CroniumConfigError("CRONIUM_EXECUTION_TOKEN contains characters that cannot be sent in a header")
        api_url = self.api_url
        parsed = urllib.parse.urlsplit(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CroniumConfigError(
                f"CRONIUM_RUNTIME_API must be an http:// or https:// URL, got {api_url!r}"
            )
        self._config_cache = _Config(api_url, token, execution_id)
        return self._config_cache

    # -- transport -----------------------------------------------------------------------------

    def _delay(self, retry_index: int) -> float:
        return min(self.backoff * (2 ** retry_index), MAX_BACKOFF)

    def _redact(self, text: str, token: str) -> str:
        return text.replace(token, "[REDACTED]") if token else text

    def _attempt(self, cfg: _Config, method: str, path: str, data: Optional[bytes], idempotent: bool,
                 extra_headers: Optional[Dict[str, str]] = None) -> Any:
        """One HTTP exchange. Returns the decoded body or raises _Attempt."""
        url = cfg.api_url + path
        headers = {
            "Authorization": f"Bearer {cfg.token}",
            "Accept": "application/json",
            "User-Agent": f"cronium-helper-python/{__version__}",
            **(extra_headers or {}),
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        where = f"the runtime API at {cfg.api_url}"
        try:
            try:
                response = self._opener.open(request, timeout=self.timeout if self.timeout > 0 else None)
            except urllib.error.HTTPError as exc:
                status = exc.code
                try:
                    raw = exc.read()
                finally:
                    exc.close()
            else:
                with response:
                    status = response.status
                    raw = response.read()
        except socket.timeout:
            raise _Attempt(CroniumTimeoutError(f"request to {where} timed out after {self.timeout:g}s ({method} {path})"), True)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, socket.timeout):
                raise _Attempt(
                    CroniumTimeoutError(f"request to {where} timed out after {self.timeout:g}s ({method} {path})"), True
                )
            never_sent = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
            detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            raise _Attempt(
                CroniumConnectionError(f"could not reach {where}: {self._redact(detail, cfg.token)}"),
                never_sent or idempotent,
            )
        except (OSError, http.client.HTTPException) as exc:
            # Connection reset / closed after the request may have been sent.
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
            raise _Attempt(
                CroniumConnectionError(f"could not reach {where}: {self._redact(detail, cfg.token)}"), idempotent
            )

        text = raw.decode("utf-8", errors="replace")
        body: Any = None
        parsed_ok = True
        if text.strip():
            try:
                body = json.loads(text)
            except ValueError:
                parsed_ok = False

        if 200 <= status < 300:
            if not parsed_ok:
                raise _Attempt(CroniumAPIError(status, "the runtime API sent a response that is not JSON"), False)
            if isinstance(body, dict) and body.get("success") is False:
                message, code = self._error_message(body, status, text, cfg.token)
                raise _Attempt(CroniumAPIError(status, message, code), False)
            return body if body is not None else {}

        message, code = self._error_message(body if parsed_ok else None, status, text, cfg.token)
        retry = status >= 500 and status != 501
        error_class = CroniumConflictError if status == 409 else CroniumAPIError
        raise _Attempt(error_class(status, message, code), retry)

    def _error_message(self, body: Any, status: int, text: str, token: str):
        message = None
        code = None
        if isinstance(body, dict):
            if isinstance(body.get("message"), str) and body["message"]:
                message = body["message"]
            err = body.get("error")
            if isinstance(err, str) and err:
                code = err
                if message is None:
                    message = err
            elif isinstance(err, dict) and isinstance(err.get("message"), str):
                message = message or err["message"]
        if message is None:
            snippet = text.strip()[:200]
            message = snippet or (http.client.responses.get(status) or f"HTTP {status}")
        return self._redact(message, token), code

    def _request(self, method: str, path: str, body: Any = _NO_BODY, *, idempotent: bool = True,
                 headers: Optional[Dict[str, str]] = None) -> Any:
        cfg = self._config()
        full_path = path.format(id=_quote_segment(cfg.execution_id))
        data = None if body is _NO_BODY else _dumps(body)
        attempts = max(0, self.max_retries) + 1
        for attempt in range(1, attempts + 1):
            logger.debug("%s %s (attempt %d/%d)", method, full_path, attempt, attempts)
            try:
                return self._attempt(cfg, method, full_path, data, idempotent, headers)
            except _Attempt as failed:
                error = failed.error
                if not failed.retry or attempt == attempts:
                    if failed.retry and attempt > 1:
                        if isinstance(error, CroniumAPIError):
                            error = CroniumAPIError(error.status_code, error.message, error.error_code, attempt)
                        else:
                            error = type(error)(f"{error} (gave up after {attempt} attempts)")
                    raise error from None
                delay = self._delay(attempt - 1)
                logger.debug("%s; retrying in %.2fs", error, delay)
                time.sleep(delay)
        raise CroniumError("unreachable")  # pragma: no cover

    # -- API -----------------------------------------------------------------------------------

    def input(self) -> Any:
        """The execution's input (any JSON value), or None when it has none."""
        result = self._request("GET", "/executions/{id}/input")
        return result.get("data") if isinstance(result, dict) else None

    def output(self, data: Any) -> None:
        """Set the execution's output (any JSON-serialisable value)."""
        self._request("POST", "/executions/{id}/output", {"data": data})

    def get_variable(self, key: str) -> Any:
        """The variable's value, or None when it does not exist (or holds null)."""
        return self.get_variable_version(key)[0]

    def get_variable_version(self, key: str) -> Tuple[Any, int]:
        """(value, version): the version to pass as ``if_version``; (None, 0) when it does not exist."""
        key = _check_key(key)
        try:
            result = self._request("GET", "/executions/{id}/variables/" + _quote_segment(key))
        except CroniumAPIError as exc:
            if exc.status_code == 404:
                return None, 0
            raise
        data = result.get("data") if isinstance(result, dict) else None
        if not isinstance(data, dict):
            return None, 0
        return data.get("value"), int(data.get("version") or 0)

    def set_variable(self, key: str, value: Any, if_version: Optional[int] = None) -> Optional[int]:
        """Store a variable (any JSON-serialisable value); returns its new version (None from an old
        sidecar). With ``if_version``, only if the variable is still at that version (0: only if it
        does not exist), else :class:`CroniumConflictError` and nothing is written."""
        key = _check_key(key)
        headers = None if if_version is None else {"If-Match": f'"{int(if_version)}"'}
        result = self._request("PUT", "/executions/{id}/variables/" + _quote_segment(key), {"value": value},
                               headers=headers)
        version = result.get("version") if isinstance(result, dict) else None
        return version if isinstance(version, int) else None

    def increment_variable(self, key: str, by: Union[int, float] = 1) -> Union[int, float]:
        """Add ``by`` to a number variable (missing or null counts as 0) atomically; returns the new value."""
        key = _check_key(key)
        if isinstance(by, bool) or not isinstance(by, (int, float)):
            raise CroniumError(f"increment_variable: 'by' must be a number, got {type(by).__name__}")
        return self._update(key, "increment", {"by": by}, lambda current: _added(key, current, by))

    def append_variable(self, key: str, value: Any, separator: str = "") -> Any:
        """Append atomically: a list gains ``value``; a string gains ``separator`` + ``value``; a missing
        variable becomes ``value``. Returns the new value."""
        key = _check_key(key)
        return self._update(key, "append", {"value": value, "separator": separator},
                            lambda current: _appended(key, current, value, separator))

    def _update(self, key: str, route: str, body: Dict[str, Any], change: Any) -> Any:
        path = "/executions/{id}/variables/" + _quote_segment(key) + "/" + route
        try:
            result = self._request("POST", path, body, idempotent=False)
        except CroniumAPIError as exc:
            if exc.status_code != 404:
                raise
            # A sidecar from before the atomic routes: read, change, write (not atomic).
            new = change(self.get_variable(key))
            self.set_variable(key, new)
            return new
        data = result.get("data") if isinstance(result, dict) else None
        return data.get("value") if isinstance(data, dict) else None

    def delete_variable(self, key: str) -> bool:
        """Remove a variable (``DELETE``); True when it was set, False when it was not. A sidecar older
        than the DELETE route (404 without ``variable_not_found``, or 405) gets a stored null instead."""
        key = _check_key(key)
        try:
            self._request("DELETE", "/executions/{id}/variables/" + _quote_segment(key))
        except CroniumAPIError as exc:
            if exc.status_code == 404 and exc.error_code == "variable_not_found":
                return False
            if exc.status_code not in (404, 405):
                raise
            self.set_variable(key, None)
        return True

    def set_condition(self, condition: Union[bool, str, int]) -> None:
        """Set the execution's condition (True/False; "true"/"false", "yes"/"no", 1/0 are accepted)."""
        self._request("POST", "/executions/{id}/condition", {"condition": _to_condition(condition)})

    def event(self) -> Dict[str, Any]:
        """The execution context: executionId, jobId, jobName, jobType, namespace, startTime, metadata."""
        result = self._request("GET", "/executions/{id}/context")
        data = result.get("data") if isinstance(result, dict) else None
        return data if data is not None else {}

    def execute_tool_action(self, tool: str, action: str, config: Optional[Dict[str, Any]] = None) -> Any:
        """Run a tool action through the runtime API and return its ``data``."""
        payload = {"tool": tool, "action": action, "params": config if config is not None else {}}
        result = self._request("POST", "/tool-actions/execute", payload, idempotent=False)
        return result.get("data") if isinstance(result, dict) else None

    def send_email(self, to: Union[str, List[str]], subject: str, body: str, **kwargs: Any) -> Any:
        """Send an email with the ``email`` tool (``to`` may be one address or a list)."""
        config = {"to": list(to) if isinstance(to, (list, tuple)) else [to], "subject": subject, "body": body, **kwargs}
        return self.execute_tool_action("email", "send_message", config)

    def send_slack_message(self, channel: str, text: str, **kwargs: Any) -> Any:
        """Send a Slack message with the ``slack`` tool."""
        return self.execute_tool_action("slack", "send_message", {"channel": channel, "text": text, **kwargs})

    def send_discord_message(self, channel_id: str, content: str, **kwargs: Any) -> Any:
        """Send a Discord message with the ``discord`` tool (``channel_id`` is sent as ``channelId``)."""
        return self.execute_tool_action("discord", "send_message", {"channelId": channel_id, "content": content, **kwargs})


class AsyncCronium:
    """asyncio flavour of :class:`Cronium`: the same methods, awaited (each runs in a worker thread)."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._sync = Cronium(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<AsyncCronium api_url={self._sync.api_url!r} execution_id={self._sync.execution_id!r}>"

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self._sync, name), *args, **kwargs)

    async def input(self) -> Any:
        return await self._call("input")

    async def output(self, data: Any) -> None:
        return await self._call("output", data)

    async def get_variable(self, key: str) -> Any:
        return await self._call("get_variable", key)

    async def set_variable(self, key: str, value: Any, if_version: Optional[int] = None) -> Optional[int]:
        return await self._call("set_variable", key, value, if_version)

    async def get_variable_version(self, key: str) -> Tuple[Any, int]:
        return await self._call("get_variable_version", key)

    async def increment_variable(self, key: str, by: Union[int, float] = 1) -> Union[int, float]:
        return await self._call("increment_variable", key, by)

    async def append_variable(self, key: str, value: Any, separator: str = "") -> Any:
        return await self._call("append_variable", key, value, separator)

    async def delete_variable(self, key: str) -> bool:
        return await self._call("delete_variable", key)

    async def set_condition(self, condition: Any) -> None:
        return await self._call("set_condition", condition)

    async def event(self) -> Dict[str, Any]:
        return await self._call("event")

    async def execute_tool_action(self, tool: str, action: str, config: Optional[Dict[str, Any]] = None) -> Any:
        return await self._call("execute_tool_action", tool, action, config)

    async def send_email(self, to: Union[str, List[str]], subject: str, body: str, **kwargs: Any) -> Any:
        return await self._call("send_email", to, subject, body, **kwargs)

    async def send_slack_message(self, channel: str, text: str, **kwargs: Any) -> Any:
        return await self._call("send_slack_message", channel, text, **kwargs)

    async def send_discord_message(self, channel_id: str, content: str, **kwargs: Any) -> Any:
        return await self._call("send_discord_message", channel_id, content, **kwargs)

    async def stream_input(self) -> AsyncIterator[Any]:
        """Async iterator over the input, as the original helper had it: the input as one chunk
        (0, False and "" included), nothing when the execution has no input (null)."""
        data = await self.input()
        if data is not None:
            yield data

    async def stream_output(self, chunks: Union[AsyncIterable[Any], Iterable[Any]]) -> None:
        """Collect every chunk of an async (or plain) iterable, then set the output to the list of them."""
        if hasattr(chunks, "__aiter__"):
            collected = [chunk async for chunk in chunks]
        else:
            collected = list(chunks)
        await self.output(collected)

    async def close(self) -> None:
        """Nothing to release (kept for compatibility)."""

    async def __aenter__(self) -> "AsyncCronium":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


# --------------------------------------------------------------------------------------------
# Module-level functions bound to a lazily created default client

_default: Optional[Cronium] = None


def get_default() -> Cronium:
    """The default client used by the module-level functions (created on first use)."""
    global _default
    if _default is None:
        _default = Cronium()
    return _default


def __getattr__(name: str) -> Any:  # PEP 562: `cronium.cronium` is the default client
    if name == "cronium":
        return get_default()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def input() -> Any:  # noqa: A001 - the name is part of the helper contract
    """The execution's input (any JSON value), or None."""
    return get_default().input()


def output(data: Any) -> None:
    """Set the execution's output."""
    return get_default().output(data)


def get_variable(key: str) -> Any:
    """A variable's value, or None when it does not exist."""
    return get_default().get_variable(key)


def set_variable(key: str, value: Any, if_version: Optional[int] = None) -> Optional[int]:
    """Store a variable (only at version ``if_version``, if given); returns its new version."""
    return get_default().set_variable(key, value, if_version)


def get_variable_version(key: str) -> Tuple[Any, int]:
    """(value, version); (None, 0) when the variable does not exist."""
    return get_default().get_variable_version(key)


def increment_variable(key: str, by: Union[int, float] = 1) -> Union[int, float]:
    """Add ``by`` atomically (missing counts as 0); returns the new value."""
    return get_default().increment_variable(key, by)


def append_variable(key: str, value: Any, separator: str = "") -> Any:
    """Append atomically to a list or string variable; returns the new value."""
    return get_default().append_variable(key, value, separator)


def delete_variable(key: str) -> bool:
    """Remove a variable; True when it was set."""
    return get_default().delete_variable(key)


def set_condition(condition: Any) -> None:
    """Set the execution's condition."""
    return get_default().set_condition(condition)


def event() -> Dict[str, Any]:
    """The execution context."""
    return get_default().event()


def execute_tool_action(tool: str, action: str, config: Optional[Dict[str, Any]] = None) -> Any:
    """Run a tool action and return its data."""
    return get_default().execute_tool_action(tool, action, config)


def send_email(to: Union[str, List[str]], subject: str, body: str, **kwargs: Any) -> Any:
    """Send an email with the ``email`` tool."""
    return get_default().send_email(to, subject, body, **kwargs)


def send_slack_message(channel: str, text: str, **kwargs: Any) -> Any:
    """Send a Slack message with the ``slack`` tool."""
    return get_default().send_slack_message(channel, text, **kwargs)


def send_discord_message(channel_id: str, content: str, **kwargs: Any) -> Any:
    """Send a Discord message with the ``discord`` tool."""
    return get_default().send_discord_message(channel_id, content, **kwargs)
