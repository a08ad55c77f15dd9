"""Which model actually serves a call: tier rules first, then the context-window fallback.

Prompt tokens are counted only when a rule or a context window needs them, so calls to
models with neither pay nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seamline.core.errors import NotFound
from seamline.core.settings import GatewayConfig, TierRule
from seamline.gateway.catalog import ModelCatalog
from seamline.registry import Actor
from seamline.telemetry.tokens import count_messages


def choose_model(
    config: GatewayConfig,
    catalog: ModelCatalog,
    model: str,
    actor: Actor,
    use_case: str | None,
    body: dict[str, Any],
) -> str:
    tokens: int | None = None

    def prompt_tokens() -> int:
        nonlocal tokens
        if tokens is None:
            tokens, _ = count_messages(model, body.get("messages") or [])
        return tokens

    for rule in config.tier_rules:
        if rule.model == model and _matches(rule, actor, use_case, prompt_tokens):
            model = rule.target
            break
    entry = catalog.get(model)
    if entry.context_fallback and entry.context_window:
        completion = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        if prompt_tokens() + int(completion) > entry.context_window:
            try:
                catalog.get(entry.context_fallback)
            except NotFound:
                return model  # misconfigured fallback: let the upstream refuse the size
            return entry.context_fallback
    return model


def _matches(
    rule: TierRule, actor: Actor, use_case: str | None, prompt_tokens: Callable[[], int]
) -> bool:
    if rule.use_case is not None and rule.use_case != use_case:
        return False
    if rule.project is not None and rule.project != actor.project.name:
        return False
    if rule.key is not None and rule.key != actor.key_id:
        return False
    if rule.min_prompt_tokens is not None and prompt_tokens() < rule.min_prompt_tokens:
        return False
    return rule.max_prompt_tokens is None or prompt_tokens() <= rule.max_prompt_tokens
