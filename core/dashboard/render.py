"""Pages from Jinja2 templates, autoescaped: job output, names and errors are hostile text.

Autoescaping is on for every `.html` template, so a value is HTML-escaped unless a template marks
it safe (none does with job-controlled text). Terminal escapes are made visible first
(`core.terminal.escape_text`, after ANSI colour codes are dropped): `page_text` is the one filter
for text a job controls.
"""
from __future__ import annotations

import json
import re
import time

from jinja2 import Environment, PackageLoader, select_autoescape
from sanic import response

from cronium.core.cli.display import ago, duration, when
from cronium.core.terminal import escape_text

#: SGR colour/style sequences (ESC [ … m): dropped rather than shown as `\x1b[31m`.
_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def page_text(value) -> str:
    """Text a job or a user controls, for a page: colour codes dropped, other controls shown as
    `\\x1b`/`\\u009b` (HTML escaping is the template's autoescape)."""
    if value is None:
        return ""
    return escape_text(_SGR.sub("", str(value)))


def _json(value) -> str:
    return page_text(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))


def make_environment(*, autoescape: bool = True) -> Environment:
    env = Environment(loader=PackageLoader("cronium.core.dashboard", "templates"),
                      autoescape=select_autoescape(["html"]) if autoescape else False,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(duration=duration, when=when, ago=ago, text=page_text, pretty_json=_json)
    return env


ENVIRONMENT = make_environment()


def render(request, name: str, *, status: int = 200, **ctx) -> response.HTTPResponse:
    """The template `name` with `ctx`, the request's role and CSRF token, as an HTML response."""
    auth = getattr(request.ctx, "auth", None)
    body = ENVIRONMENT.get_template(name).render(
        request=request, role=auth.role if auth else None, csrf_token=auth.csrf if auth else "",
        auth_required=request.app.ctx.access.required, now=time.time(), **ctx)
    return response.html(body, status=status)


def error_page(request, status: int, title: str, message: str, hint: str = "") -> response.HTTPResponse:
    """A clear error page (never a traceback): what was wrong and how to fix it."""
    return render(request, "error.html", status=status, title=title, message=message, hint=hint)
