"""The dashboard's pages. Each module here is one page: it builds its routes and calls
:func:`register`, and the navigation lists what registered (a capability that lands adds
its page by adding a module, touching nothing else)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.routing import BaseRoute


@dataclass(frozen=True)
class Page:
    slug: str  # the page lives at /ui/<slug>
    title: str
    order: int  # its place in the navigation
    routes: Sequence[BaseRoute]


PAGES: dict[str, Page] = {}


def register(page: Page) -> None:
    PAGES[page.slug] = page


def discover() -> list[Page]:
    """Every page module imported (each registers itself), in navigation order."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return sorted(PAGES.values(), key=lambda page: page.order)
