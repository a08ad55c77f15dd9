"""The HTTP face: the registry's JSON API under ``/api/v1``, health and readiness."""

from seamline.api.app import create_app

__all__ = ["create_app"]
