"""The detectors a policy can name: the built-in ones, and any a package registers.

A package adds a detector with an entry point in the group ``seamline.guards`` whose name is
the detector's and whose object is a callable returning a :class:`~seamline.guards.findings.
Detector` (Presidio or LLM Guard scanners whose models a team has locally, say): installed,
it can be named in a policy; not installed, a policy naming it is refused at push.
Detectors are built once per process and shared: they are pure and thread-safe.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from seamline.guards.findings import Detector

ENTRY_POINT_GROUP = "seamline.guards"
# Built in: module and class, imported on first use (a process that never guards never
# compiles their patterns).
BUILT_IN: dict[str, tuple[str, str]] = {
    "injection.rules": ("seamline.guards.injection_rules", "InjectionRules"),
    "injection.minilm": ("seamline.guards.injection_model", "InjectionModel"),
    "pii": ("seamline.guards.pii", "PiiDetector"),
    "secrets": ("seamline.guards.secrets", "SecretDetector"),
    "markup": ("seamline.guards.output", "MarkupDetector"),
}
# Built by the engine rather than shared (``output.py``): leakage looks for the call's own
# canary token, schema checks against the call's expected JSON Schema, exfiltration for
# links outside the rule's allowed hosts.
LEAKAGE = "leakage"
SCHEMA = "schema"
EXFILTRATION = "exfiltration"
PER_CALL = frozenset({LEAKAGE, SCHEMA})
# Built per rule (``judge.py``): each rule names the model it asks.
JUDGE = "injection.judge"
PER_RULE = frozenset({EXFILTRATION, JUDGE})
# What each detector's findings can be answered with. Injection has no span worth cutting
# out (an instruction hidden in a document is still in the document), so it blocks or flags.
ACTIONS_BY_DETECTOR: dict[str, frozenset[str]] = {
    "injection.rules": frozenset({"block", "flag"}),
    "injection.minilm": frozenset({"block", "flag"}),
    JUDGE: frozenset({"block", "flag"}),
    LEAKAGE: frozenset({"block", "flag"}),
    SCHEMA: frozenset({"block", "flag"}),
    EXFILTRATION: frozenset({"block", "redact", "flag"}),
}

_lock = threading.Lock()
_built: dict[str, Detector] = {}


@functools.cache
def _registered() -> dict[str, Callable[[], Any]]:
    return {ep.name: ep.load for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_detectors() -> frozenset[str]:
    return frozenset(BUILT_IN) | PER_CALL | PER_RULE | frozenset(_registered())


def detector(name: str) -> Detector:
    """The shared instance of detector ``name`` (built on first use)."""
    found = _built.get(name)
    if found is not None:
        return found
    with _lock:
        if name not in _built:
            _built[name] = _build(name)
        return _built[name]


def _build(name: str) -> Detector:
    if name in BUILT_IN:
        module, attribute = BUILT_IN[name]
        made: Detector = getattr(importlib.import_module(module), attribute)()
        return made
    load = _registered()[name]
    make = load()  # the entry point's object: a callable that builds the detector
    built: Detector = make()
    return built
