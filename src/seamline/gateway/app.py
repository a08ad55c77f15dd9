"""The server behind ``seamline serve``: the gateway's ``/v1`` endpoints and ``/metrics`` on
raw ASGI, and everything else (the registry API, health, OpenAPI) on the FastAPI app.

``build_app`` composes them for tests and embedding; ``app_from_env`` is the factory that
uvicorn imports in each worker process.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from fastapi import FastAPI

from seamline.api.app import create_app
from seamline.core.errors import AuthenticationFailed, MethodNotAllowed
from seamline.core.settings import Settings
from seamline.gateway.alerting import Alerting
from seamline.gateway.chat import chat_completions, serve_chat
from seamline.gateway.core import Gateway
from seamline.gateway.dialects.openai import AzureDeploymentChat
from seamline.gateway.dialects.responses import ResponsesDialect
from seamline.gateway.endpoints import (
    MESSAGES,
    MODELS_PREFIX,
    count_tokens,
    embeddings,
    legacy_completions,
    list_models,
    post_feedback,
    retrieve_model,
)
from seamline.gateway.server.http import Receive, Scope, Send, bearer_token, send_bytes, send_error
from seamline.gateway.server.openapi import document_gateway
from seamline.gateway.server.worker import exit_with_parent
from seamline.providers.base import Provider
from seamline.registry import Registry
from seamline.registry.workspace import open_registry
from seamline.ui import build_ui

log = logging.getLogger("seamline.gateway")

Handler = Callable[[Gateway, Scope, Receive, Send], Awaitable[None]]


async def metrics(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    token = gateway.config.metrics_token
    if token is not None and not hmac.compare_digest(
        bearer_token(scope) or "", token.get_secret_value()
    ):
        await send_error(
            send,
            AuthenticationFailed("/metrics needs the metrics token", code="invalid_metrics_token"),
        )
        return
    await send_bytes(
        send,
        200,
        await asyncio.to_thread(gateway.metrics.render),  # reads files: off the loop
        content_type=[(b"content-type", b"text/plain; version=0.0.4")],
    )


async def responses(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """The chat request path in the Responses dialect, which keeps what a call asked for (a
    Response echoes it): a dialect per call."""
    await serve_chat(gateway, scope, receive, send, ResponsesDialect())


ROUTES: dict[str, tuple[str, Handler]] = {
    "/v1/chat/completions": ("POST", chat_completions),
    "/v1/embeddings": ("POST", embeddings),
    "/v1/models": ("GET", list_models),
    "/v1/completions": ("POST", legacy_completions),
    "/v1/messages": ("POST", partial(serve_chat, dialect=MESSAGES)),
    "/v1/messages/count_tokens": ("POST", count_tokens),
    "/v1/responses": ("POST", responses),
    "/v1/feedback": ("POST", post_feedback),
    "/metrics": ("GET", metrics),
}


AZURE_PREFIX = "/openai/deployments/"


def _azure_route(rest: str) -> tuple[str, Handler] | None:
    """Azure OpenAI's chat path, ``{deployment}/chat/completions``, for its clients."""
    deployment, _, operation = rest.partition("/")
    if not deployment or operation != "chat/completions":
        return None
    return "POST", partial(serve_chat, dialect=AzureDeploymentChat(deployment))


class SeamlineServer:
    """ASGI: the gateway's hot-path routes by exact path, the FastAPI app for the rest."""

    def __init__(self, gateway: Gateway, api: FastAPI) -> None:
        self.gateway = gateway
        self.api = api
        self.alerting = Alerting(gateway)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].rstrip("/") or "/"
            route = ROUTES.get(path)
            if route is None and path.startswith(MODELS_PREFIX):
                route = ("GET", retrieve_model)  # model ids may hold slashes
            elif route is None and path.startswith(AZURE_PREFIX):
                route = _azure_route(path[len(AZURE_PREFIX) :])
            if route is not None:
                method, handler = route
                if scope["method"] != method:
                    error = MethodNotAllowed(
                        f"{scope['method']} {scope['path']} is not supported; use {method}",
                    )
                    await send_error(send, error)
                    return
                await handler(self.gateway, scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        stop_watching = exit_with_parent()  # a worker leaves with its supervisor (worker.py)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                    self.alerting.start()
                except Exception as exc:
                    log.exception("gateway start failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                stop_watching()
                await self.alerting.stop()
                await self.gateway.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(
    settings: Settings,
    registry: Registry | None = None,
    *,
    providers: dict[str, Provider] | None = None,
) -> SeamlineServer:
    registry = registry or open_registry(settings)
    gateway = Gateway(settings, registry, providers=providers)
    api = create_app(settings, registry=registry)
    document_gateway(api)
    api.mount("/ui", build_ui(registry, settings))
    return SeamlineServer(gateway, api)


def app_from_env() -> SeamlineServer:
    return build_app(Settings())
