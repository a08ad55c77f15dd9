"""What every page shares: the signed-in session, CSRF on actions, rendering, time ranges
and paging.

Pages are plain server-rendered HTML: every table sorts and pages through links the server
answers, every action is a form, and the few charts are drawn by uPlot (vendored, loaded
from ``/ui/static``) over data the page already carries, with the same figures in a table
beside them. Endpoints are synchronous (Starlette runs them in its thread pool), as the
database calls they make are.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from seamline.core.clock import utcnow
from seamline.core.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    SeamlineError,
)
from seamline.registry import Registry
from seamline.registry.sessions import Session
from seamline.telemetry.rollups import hour_of
from seamline.ui.pages import PAGES

COOKIE = "seamline_session"
PAGE_SIZE = 50
MAX_PAGE = 10_000
_WHOLE = re.compile(r"[0-9]{1,10}")
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"

environment = Environment(
    loader=PackageLoader("seamline.ui", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

Page = Callable[[Request, Session], Response]
Action = Callable[[Request, Session, FormData], Response]


def registry_of(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def link(request: Request, path: str, **query: Any) -> str:
    """``path`` under the dashboard's mount point, with the non-empty ``query`` values."""
    root = request.scope.get("root_path", "")
    params = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{root}{path}" + (f"?{urlencode(params)}" if params else "")


def current_session(request: Request) -> Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return registry_of(request).session(token)
    except AuthenticationFailed:
        return None


def page(endpoint: Page) -> Callable[[Request], Response]:
    """A page for signed-in users; anyone else is sent to sign in, and back here after."""

    @functools.wraps(endpoint)
    def signed_in(request: Request) -> Response:
        session = current_session(request)
        if session is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(link(request, "/login", next=here), status_code=303)
        try:
            return endpoint(request, session)
        except SeamlineError as exc:
            return error_page(request, session, exc)

    return signed_in


def action(endpoint: Action) -> Callable[[Request], Any]:
    """A form that changes something: signed in and carrying the session's CSRF token (which
    a page on another site cannot read), else refused with 403 and nothing done."""

    async def checked(request: Request) -> Response:
        form = await request.form()
        session = await run_in_threadpool(current_session, request)
        if session is None:
            return RedirectResponse(link(request, "/login"), status_code=303)
        sent = str(form.get("csrf_token", ""))
        if not same_origin(request) or not hmac.compare_digest(
            sent.encode(), session.csrf_token.encode()
        ):
            refused = PermissionDenied(
                "this form is stale or forged: reload the page and retry", code="csrf_failed"
            )
            return error_page(request, session, refused)
        try:
            return await run_in_threadpool(endpoint, request, session, form)
        except SeamlineError as exc:
            return error_page(request, session, exc)

    functools.update_wrapper(checked, endpoint)
    return checked


def render(
    request: Request,
    session: Session | None,
    template: str,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    body = environment.get_template(template).render(
        request=request,
        session=session,
        navigation=sorted(PAGES.values(), key=lambda p: p.order),
        link=functools.partial(link, request),
        **{"current": None, **context},
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, session: Session | None, exc: SeamlineError) -> HTMLResponse:
    return render(request, session, "error.html", status=exc.status, error=exc)


# No script from anywhere else, no framing (clickjacking), no sniffing, no referrer leaving.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def time_range(
    query: Mapping[str, str], *, now: datetime | None = None
) -> tuple[str, datetime, datetime]:
    """The page's range (its name, start and end): whole hours ending with the current
    one, so totals and charts come from the hourly rollups alone."""
    name = query.get("range") or DEFAULT_RANGE
    if name not in RANGES:
        raise InvalidInput(f"unknown range {name!r}: use {', '.join(RANGES)}", param="range")
    end = hour_of(now or utcnow()) + timedelta(hours=1)
    return name, end - RANGES[name], end


def page_number(query: Mapping[str, str]) -> int:
    return max(1, whole_number(query.get("page") or "1", "page", most=MAX_PAGE))


def whole_number(value: str, name: str, *, most: int = 10**9) -> int:
    """``value`` as a whole number from 0 to ``most``, or a clear 400 naming ``name``."""
    if not _WHOLE.fullmatch(value) or int(value) > most:
        raise InvalidInput(f"{name} must be a whole number up to {most}", param=name)
    return int(value)


def quoted(value: str) -> str:
    """A value as one path segment (an id may hold '/', '?' or '#')."""
    return quote(value, safe="")


environment.filters["quoted"] = quoted


def same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this site: the browser's ``Sec-Fetch-Site`` and
    ``Origin`` headers, where it sends them (a client without them is no browser on another
    site). With the CSRF token on actions and SameSite cookies, a third line."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"
