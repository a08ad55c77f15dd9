"""The registry of versioned, immutable artefacts: prompts, model configurations, eval sets,
guard policies, index snapshots and routing rules, with aliases, approvals, lineage and a
tamper-evident audit log. Usable without a server."""

from seamline.registry.gate import GateSubject, GateVerdict, RecordedRunsGate, ReleaseGate
from seamline.registry.identity import Actor, Project, Scope
from seamline.registry.loader import Draft, load_drafts
from seamline.registry.prompt import Prompt, RenderedPrompt
from seamline.registry.service import Registry
from seamline.registry.specs import ArtefactKind, PromptSpec

__all__ = [
    "Actor",
    "ArtefactKind",
    "Draft",
    "GateSubject",
    "GateVerdict",
    "Project",
    "Prompt",
    "PromptSpec",
    "RecordedRunsGate",
    "Registry",
    "ReleaseGate",
    "RenderedPrompt",
    "Scope",
    "load_drafts",
]
