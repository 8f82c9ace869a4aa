"""Who may use the dashboard and how a request proves it: roles, sessions, CSRF.

Two roles: `readonly` sees every page, `admin` also acts (POST: cancel, retry, run now). Their
tokens come from `dashboard.admin_token` / `dashboard.readonly_token` (config, `CRONIUM_DASHBOARD_*`
environment) or the `*_file` keys. With no token configured the dashboard is open to whoever
reaches it, so it may only listen on loopback (`check_bind`), and everyone there is admin.

A request authenticates with `Authorization: Bearer TOKEN` or with the session cookie that the
login form (POST /login) sets: signed (HMAC-SHA256, a key random per process), HttpOnly,
SameSite=Strict, expiring after `dashboard.session_hours`. A token in the query string is refused.
Every POST from a browser session carries the session's CSRF token (form field `csrf` or header
`X-CSRF-Token`) and, when the browser sends one, a same-origin `Origin`. Bearer requests carry no
ambient credential and need no CSRF token.

For pages: `authenticate` runs before every request (the app registers it): anyone not logged in
gets the login page (401 for non-HTML clients) except on PUBLIC_PATHS. Handlers that act are
decorated with `@action` (admin + CSRF + Origin); `@requires("admin")` checks only the role.
Templates get `role` and `csrf_token` (render.render); a form includes
`<input type="hidden" name="csrf" value="{{ csrf_token }}">`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

from sanic import Blueprint, response

from cronium.core.errors import ConfigError, UsageError

ROLES = ("readonly", "admin")
SESSION_COOKIE = "cronium_session"
MIN_TOKEN_CHARS = 16
#: Paths served without a login (the login form itself and the stylesheet/script it uses).
PUBLIC_PATHS = ("/login", "/static/")
#: Query parameters refused outright: a credential in a URL ends up in logs and browser history.
URL_CREDENTIALS = ("token", "access_token", "auth", "password", "bearer")


@dataclass(frozen=True)
class Access:
    """The configured access rules. `tokens` (role -> token) never appears in a repr."""

    tokens: dict = field(repr=False)
    key: bytes = field(repr=False)
    session_seconds: float = 12 * 3600

    @property
    def required(self) -> bool:
        """Whether requests must authenticate (a token is configured)."""
        return bool(self.tokens)

    def role_of_token(self, token: str) -> str | None:
        """The role whose token `token` is (compared in constant time), or None."""
        found = None
        for role, expected in self.tokens.items():
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = role
        return found


def _read_token(config, role: str) -> str:
    key, file_key = f"dashboard.{role}_token", f"dashboard.{role}_token_file"
    token = config[key]
    if not token and config[file_key]:
        try:
            token = Path(config[file_key]).expanduser().read_text().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ConfigError(f"cannot read the {role} token from {config[file_key]!r}: "
                              f"{getattr(exc, 'strerror', None) or 'the file is empty'}",
                              source=config.source(file_key), key=file_key,
                              hint="put the token on the file's first line, readable by this user") from None
    if token and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the {role} token is shorter than {MIN_TOKEN_CHARS} characters", key=key,
                          source=config.source(file_key if config[file_key] and not config[key] else key),
                          hint="generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'")
    return token


def load_access(config) -> Access:
    """The access rules of `config` (`ConfigError` for an unreadable or too short token)."""
    tokens = {role: t for role in ROLES if (t := _read_token(config, role))}
    if len(set(tokens.values())) < len(tokens):
        raise ConfigError("dashboard.admin_token and dashboard.readonly_token are the same",
                          key="dashboard.readonly_token", hint="give each role its own token")
    return Access(tokens=tokens, key=session_key(tokens), session_seconds=config["dashboard.session_hours"] * 3600)


def session_key(tokens: dict) -> bytes:
    """The key sessions and CSRF tokens are signed with. Derived from the configured tokens, so a
    restart (or a second dashboard process with the same tokens) keeps everyone logged in and
    changing a token logs everyone out; random when no token is configured (loopback, no login)."""
    if not tokens:
        return secrets.token_bytes(32)
    text = "\0".join(f"{role}={tokens[role]}" for role in sorted(tokens))
    return hmac.new(b"cronium-dashboard-session-v1", text.encode(), hashlib.sha256).digest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, access: Access) -> None:
    """Refuse (`UsageError`, exit 2) to listen beyond loopback without authentication."""
    if not is_loopback(host) and not access.required:
        raise UsageError(f"the dashboard would listen on {host} without authentication",
                         hint="set dashboard.admin_token (or CRONIUM_DASHBOARD_ADMIN_TOKEN, or "
                              "dashboard.admin_token_file), or keep dashboard.host = \"127.0.0.1\"")


# --- sessions and CSRF tokens ----------------------------------------------------------------

def _sign(access: Access, text: str) -> str:
    return hmac.new(access.key, text.encode(), hashlib.sha256).hexdigest()


def make_session(access: Access, role: str, now: float | None = None) -> str:
    """A session cookie value: role, nonce, expiry, signed."""
    body = base64.urlsafe_b64encode(json.dumps(
        {"r": role, "n": secrets.token_urlsafe(16), "e": (now or time.time()) + access.session_seconds}).encode()).decode()
    return f"{body}.{_sign(access, body)}"


def read_session(access: Access, value: str | None, now: float | None = None) -> dict | None:
    """The session of a cookie value ({r: role, n: nonce, e: expiry}) when genuine and unexpired."""
    body, _, sig = (value or "").partition(".")
    if not body or not hmac.compare_digest(sig, _sign(access, body)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    if data.get("r") not in ROLES or data.get("e", 0) < (now or time.time()):
        return None
    return data


def csrf_for(access: Access, nonce: str) -> str:
    return _sign(access, f"csrf:{nonce}")


@dataclass
class RequestAuth:
    """What `authenticate` found: the role (None: not logged in), the CSRF token, how."""

    role: str | None = None
    csrf: str = ""
    bearer: bool = False
    new_cookie: str | None = None  # a session to set (an open dashboard's anonymous admin session)


def _identify(access: Access, request) -> RequestAuth:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        role = access.role_of_token(header[7:].strip())
        return RequestAuth(role=role, bearer=True)
    session = read_session(access, request.cookies.get(SESSION_COOKIE))
    if session is None and not access.required:
        value = make_session(access, "admin")
        session = read_session(access, value)
        return RequestAuth(role="admin", csrf=csrf_for(access, session["n"]), new_cookie=value)
    if session is None:
        return RequestAuth()
    return RequestAuth(role=session["r"], csrf=csrf_for(access, session["n"]))


def _wants_html(request) -> bool:
    return "text/html" in request.headers.get("accept", "") and request.method == "GET"


async def authenticate(request):
    """Request middleware: refuse credentials in the URL, find the role, send the unauthenticated
    to the login page (HTML) or answer 401."""
    from .render import error_page

    access = request.app.ctx.access
    if any(name in request.args for name in URL_CREDENTIALS):
        return error_page(request, 400, "Credentials in the URL are refused",
                          "a token in the query string ends up in logs and browser history",
                          "send it as an `Authorization: Bearer` header, or log in at /login")
    request.ctx.auth = _identify(access, request)
    if request.ctx.auth.role or request.path.startswith(PUBLIC_PATHS):
        return None
    if _wants_html(request) and not request.ctx.auth.bearer:
        return response.redirect("/login")
    return error_page(request, 401, "Not logged in", "this dashboard requires a token",
                      "log in at /login, or send `Authorization: Bearer TOKEN`")


def set_session_cookie(resp, value: str, max_age: float) -> None:
    resp.add_cookie(SESSION_COOKIE, value, httponly=True, samesite="Strict", path="/", max_age=int(max_age),
                    secure=False)


async def issue_cookie(request, resp):
    """Response middleware: hand an open dashboard's anonymous session its cookie."""
    auth = getattr(request.ctx, "auth", None)
    if auth is not None and auth.new_cookie and resp is not None:
        set_session_cookie(resp, auth.new_cookie, request.app.ctx.access.session_seconds)


def same_origin(request) -> bool:
    """True unless the browser says the request comes from another origin (Origin, else Referer)."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    if claimed == "null":  # an opaque origin is never ours
        return False
    return urlsplit(claimed).netloc == request.host


def _refused(request, status: int, title: str, message: str, hint: str = ""):
    from .render import error_page

    return error_page(request, status, title, message, hint)


def requires(role: str):
    """Handler decorator: the request's role must be `role` or above (admin > readonly)."""

    def decorate(handler):
        @wraps(handler)
        async def wrapped(request, *args, **kwargs):
            have = request.ctx.auth.role
            if have is None:
                return _refused(request, 401, "Not logged in", "this page needs a login", "log in at /login")
            if ROLES.index(have) < ROLES.index(role):
                return _refused(request, 403, "Not allowed", f"the {have} role may look but not act",
                                "log in with the admin token to do this")
            return await handler(request, *args, **kwargs)

        return wrapped

    return decorate


def csrf_ok(request) -> bool:
    """The POST carries this session's CSRF token (Bearer requests need none)."""
    auth = request.ctx.auth
    if auth.bearer:
        return True
    sent = (request.form.get("csrf") if request.form else None) or request.headers.get("x-csrf-token", "")
    return bool(auth.csrf) and hmac.compare_digest(sent, auth.csrf)


def action(handler):
    """Decorator for POST handlers that change something: admin role, CSRF token, same origin."""

    @requires("admin")
    @wraps(handler)
    async def wrapped(request, *args, **kwargs):
        if not request.ctx.auth.bearer and not same_origin(request):
            return _refused(request, 403, "Refused", "the request came from another site (Origin)",
                            "use the dashboard's own buttons")
        if not csrf_ok(request):
            return _refused(request, 403, "Refused", "the form's CSRF token is missing or wrong",
                            "reload the page and try again")
        return await handler(request, *args, **kwargs)

    return wrapped


# --- the login form ----------------------------------------------------------------------------

bp = Blueprint("login")


@bp.get("/login")
async def login_form(request):
    from .render import render

    return render(request, "login.html", failed=False)


@bp.post("/login")
async def login(request):
    """A correct token sets the session cookie of its role; a wrong one shows the form again (401)."""
    from .render import render

    access = request.app.ctx.access
    if not same_origin(request):
        return _refused(request, 403, "Refused", "the login form was posted from another site")
    role = access.role_of_token((request.form.get("token") or "") if request.form else "")
    if role is None:
        return render(request, "login.html", status=401, failed=True)
    resp = response.redirect("/", status=303)
    set_session_cookie(resp, make_session(access, role), access.session_seconds)
    return resp


@bp.post("/logout")
async def logout(request):
    resp = response.redirect("/login" if request.app.ctx.access.required else "/", status=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
