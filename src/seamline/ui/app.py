"""The dashboard's Starlette app, mounted at ``/ui`` by ``seamline serve``: signing in and
out, the static files, and every page that registered (``seamline.ui.pages``)."""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from seamline.core.errors import AuthenticationFailed, PermissionDenied, SeamlineError
from seamline.core.settings import Settings
from seamline.registry import Registry
from seamline.registry.sessions import SESSION_LIFETIME
from seamline.ui.pages import discover
from seamline.ui.web import COOKIE, current_session, error_page, link, render, same_origin

HOME = "/overview"
log = logging.getLogger("seamline.ui")


def build_ui(registry: Registry, settings: Settings) -> Starlette:
    routes = [
        Route("/", home),
        Route("/login", sign_in, methods=["GET", "POST"]),
        Route("/logout", sign_out, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("seamline.ui", "static")]), name="static"),
    ]
    for page in discover():
        routes.extend(page.routes)
    app = Starlette(routes=routes, exception_handlers={Exception: _unexpected})
    app.state.registry = registry
    app.state.settings = settings
    return app


def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug or an outage: logged with its trace, answered with a page that shows none."""
    log.error("dashboard request failed: %s %s", request.method, request.url.path, exc_info=exc)
    failure = SeamlineError("something went wrong on the server; the error is logged")
    return render(request, None, "error.html", status=500, error=failure)


def home(request: Request) -> Response:
    return RedirectResponse(link(request, HOME), status_code=303)


async def sign_in(request: Request) -> Response:
    """The sign-in form; a key that works opens a session (cookie: HttpOnly, SameSite=Lax,
    Secure over TLS, scoped to the dashboard's path) and goes where the user was heading."""
    target = _local(request.query_params.get("next"), request)
    if request.method == "GET":
        return render(request, None, "login.html", target=target, failed=None)
    if not same_origin(request):  # no other site signs a browser in (login CSRF)
        refused = PermissionDenied("sign in from this site's own page", code="csrf_failed")
        return error_page(request, None, refused)
    form = await request.form()
    key = str(form.get("api_key", "")).strip()
    registry: Registry = request.app.state.registry
    try:
        token, _ = await run_in_threadpool(registry.open_session, key)
        previous = request.cookies.get(COOKIE)
        if previous:  # one session per browser: the one it had ends
            await run_in_threadpool(registry.close_session, previous)
    except (AuthenticationFailed, PermissionDenied) as exc:
        return render(
            request, None, "login.html", status=exc.status, target=target, failed=exc.message
        )
    except SeamlineError as exc:
        return error_page(request, None, exc)
    settings: Settings = request.app.state.settings
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path=request.scope.get("root_path", "") or "/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or settings.dashboard_secure_cookie,
    )
    return response


async def sign_out(request: Request) -> Response:
    """Sign out (a form with the CSRF token, so no other site can sign a user out)."""
    form = await request.form()
    session = await run_in_threadpool(current_session, request)
    token = request.cookies.get(COOKIE)
    sent = str(form.get("csrf_token", "")).encode()
    if session is None or not token:
        return RedirectResponse(link(request, "/login"), status_code=303)
    if not same_origin(request) or not hmac.compare_digest(sent, session.csrf_token.encode()):
        return RedirectResponse(link(request, HOME), status_code=303)  # not signed out
    registry: Registry = request.app.state.registry
    await run_in_threadpool(registry.close_session, token)
    response = RedirectResponse(link(request, "/login"), status_code=303)
    response.delete_cookie(COOKIE, path=request.scope.get("root_path", "") or "/")
    return response


def _local(target: str | None, request: Request) -> str:
    """Where to go after signing in: a path of this dashboard only (never another site)."""
    if target:
        parts = urlsplit(target)
        root = request.scope.get("root_path", "")
        if not parts.scheme and not parts.netloc and parts.path.startswith(root + "/"):
            return target
    return link(request, HOME)
