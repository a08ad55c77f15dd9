"""The web dashboard at ``/ui``: server-rendered pages over the same tables and registry
operations as the CLI, signed in with an API key (``seamline.ui.app``)."""

from seamline.ui.app import build_ui

__all__ = ["build_ui"]
