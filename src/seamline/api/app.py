"""The ASGI application behind ``seamline serve``.

``create_app`` builds it from explicit settings (tests, embedding); ``app_from_env`` is the
factory uvicorn imports in each worker process, reading settings from the environment.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

import seamline
from seamline.api.admission import Admission
from seamline.api.errors import error_response, install_error_handlers, log
from seamline.api.registry_routes import router as registry_router
from seamline.core.settings import Settings
from seamline.registry import Registry
from seamline.registry.workspace import open_registry


def create_app(settings: Settings | None = None, *, registry: Registry | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = registry or open_registry(settings)
    app = FastAPI(
        title="seamline",
        version=seamline.__version__,
        description="Registry API: versioned prompts and artefacts, aliases, approvals, audit.",
    )
    app.state.registry = registry
    install_error_handlers(app)
    app.include_router(registry_router)
    app.add_middleware(
        Admission,
        registry=registry,
        max_body_bytes=settings.gateway.max_body_bytes,
        keyed_prefix=registry_router.prefix,
    )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    def readyz() -> dict[str, Any] | JSONResponse:
        """The process can serve: the database answers."""
        try:
            with registry.db.read() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not ready", never a 500
            log.warning("readiness check failed", exc_info=True)
            return error_response(503, "api_error", "not_ready", "database not ready")
        return {"status": "ready"}

    return app


def app_from_env() -> FastAPI:
    return create_app(Settings())
