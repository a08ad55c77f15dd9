"""What every gateway endpoint does the same way: admit the caller, check the model it may
call, choose the limit counters, and bound what the call can cost."""

from __future__ import annotations

from collections.abc import Callable

from seamline.core.errors import PermissionDenied
from seamline.core.settings import GatewayConfig
from seamline.gateway.catalog import ModelCatalog
from seamline.gateway.stages.router import Router
from seamline.gateway.stores.limits import LimitScope
from seamline.registry import Actor
from seamline.registry.identity import Scope
from seamline.telemetry.event import CallEvent


def admit_caller(event: CallEvent, actor: Actor) -> None:
    """Attribute the call to the key's project, and refuse keys that may not invoke."""
    event.project_id, event.project = actor.project.id, actor.project.name
    event.api_key_id = actor.key_id
    if not actor.can(Scope.INVOKE):
        raise PermissionDenied("this API key lacks the 'invoke' scope", code="missing_scope")


def check_model(actor: Actor, model: str) -> None:
    if not actor.may_call(model):
        raise PermissionDenied(
            f"this API key may not call the model `{model}`",
            code="model_not_allowed",
            param="model",
        )


def limit_scopes(config: GatewayConfig, actor: Actor, model: str) -> list[LimitScope]:
    scopes = [
        LimitScope(f"key:{actor.key_id}", config.key_limits),
        LimitScope(f"project:{actor.project.id}", config.project_limits),
    ]
    model_limits = config.model_limits.get(model)
    if model_limits is not None:
        scopes.append(LimitScope(f"model:{actor.project.id}:{model}", model_limits))
    return scopes


def most_it_can_cost(
    router: Router,
    catalog: ModelCatalog,
    model: str,
    prompt_tokens: Callable[[str], int],
    completion_tokens: int,
) -> float:
    """An upper bound of a call's cost: its prompt (counted with the tokenizer of the
    model's first deployment) and its completion cap, at the dearest price of the model and
    its fallbacks."""
    deployments = [d for entry in router.chain(model, catalog) for d in entry.deployments]
    tokens = prompt_tokens(deployments[0].upstream_model)
    return max(d.price.cost(tokens, completion_tokens) for d in deployments)
