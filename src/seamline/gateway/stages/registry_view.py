"""The gateway's read-through view of the registry: API keys and resolved prompts, cached per
worker and invalidated by the project's change counter (see ``changes.py``).

Cache hits cost a dictionary lookup and an HMAC. Misses and reloads read the database in a
thread so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import urlsplit

from seamline.core.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    SeamlineError,
    Unavailable,
)
from seamline.core.settings import GatewayConfig, ModelConfig, ModelPrices
from seamline.gateway.stores.changes import ChangeProbe
from seamline.guards.engine import GuardEngine
from seamline.guards.policy import default_policy
from seamline.providers.base import DEFAULT_BASE_URLS
from seamline.registry import Actor, Prompt, Registry
from seamline.registry.guard_policies import PROJECT_POLICY, policy_for
from seamline.registry.identity import KEY_PREFIX, Scope, hash_key
from seamline.registry.records import AliasRecord, VersionRecord
from seamline.registry.refs import canonical_ref, parse_ref
from seamline.registry.specs import ModelSpec

MAX_CACHED_KEYS = 10_000
# Resolved prompt versions per worker: each holds its compiled templates, so the count is
# bounded; least recently used go first.
MAX_CACHED_PROMPTS = 2_000
MAX_CACHED_MODELS = 10_000  # per kind: model configurations, guard policies
UNVERIFIED = -1
T = TypeVar("T")  # a change counter no project has: the entry is reloaded on its next use


@dataclass
class _CachedActor:
    actor: Actor
    generation: int


@dataclass
class _CachedPrompt:
    prompt: Prompt
    aliases: dict[str, AliasRecord]
    generation: int


class RegistryView:
    def __init__(self, registry: Registry, probe: ChangeProbe) -> None:
        self.registry = registry
        self.probe = probe
        self._actors: dict[str, _CachedActor] = {}
        self._prompts: OrderedDict[tuple[int, str, str], _CachedPrompt] = OrderedDict()
        self._models: dict[tuple[int, str], tuple[ModelConfig | None, int]] = {}
        self._policies: dict[tuple[int, str], tuple[GuardEngine, int]] = {}
        self._indexes: dict[tuple[int, str], tuple[VersionRecord, int]] = {}
        self._shipped = GuardEngine(default_policy())

    async def authenticate(self, bearer: str | None) -> tuple[Actor, int | None]:
        """The key's actor and the project's current change counter."""
        if not bearer:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send 'Authorization: Bearer sk-seam-...'.",
                code="missing_api_key",
            )
        if not bearer.startswith(KEY_PREFIX):
            raise AuthenticationFailed(
                "Incorrect API key provided: seamline keys start with 'sk-seam-'."
            )
        digest = hash_key(self.registry.key_secret, bearer)
        cached = self._actors.get(digest)
        if cached is None:
            actor = await self._load_actor(bearer)
            generation = await self.probe.generation(actor.project.id)
            # This counter was read *after* the key: a revocation committed in between is
            # already in it, so it cannot vouch for the key. Stamp the entry as never
            # current; the key's next request reloads it under a counter read beforehand.
            stamp = UNVERIFIED
        else:
            generation = await self.probe.generation(cached.actor.project.id)
            if generation is None or generation == cached.generation:
                return cached.actor, generation
            # Read before the reload: a revocation racing it leaves the entry one change
            # behind, and the next request reloads again. Revocation takes effect on the
            # next request of every worker, race or not.
            actor = await self._load_actor(bearer)
            stamp = generation
        if len(self._actors) >= MAX_CACHED_KEYS:
            self._actors.clear()
        self._actors[digest] = _CachedActor(actor, stamp)
        return actor, generation

    async def _load_actor(self, bearer: str) -> Actor:
        try:
            return await asyncio.to_thread(self.registry.authenticate, bearer)
        except SeamlineError:
            raise
        except Exception as exc:  # the database is down and the key is not cached
            raise Unavailable("cannot check the API key right now; retry shortly") from exc

    async def prompt(
        self, actor: Actor, generation: int | None, name: str, ref: str
    ) -> tuple[Prompt, dict[str, AliasRecord]]:
        """The prompt version ``ref`` names (a number, an alias or ``latest``), with the
        prompt's aliases (for canary and shadow arms)."""
        parsed = parse_ref(ref)  # "3", "03" and "v3" share one entry; bad numbers are 400s
        key = (actor.project.id, name, canonical_ref(parsed))
        cached = self._prompts.get(key)
        if cached is not None and (generation is None or generation == cached.generation):
            self._prompts.move_to_end(key)
            return cached.prompt, cached.aliases
        try:
            record, aliases = await asyncio.to_thread(self._load_prompt, actor, name, parsed)
        except SeamlineError:
            raise
        except Exception as exc:
            if cached is not None:
                return cached.prompt, cached.aliases
            raise Unavailable("cannot resolve the prompt right now; retry shortly") from exc
        prompt = record.as_prompt(alias=parsed if isinstance(parsed, str) else None)
        self._prompts[key] = _CachedPrompt(prompt, aliases, generation or 0)
        if len(self._prompts) > MAX_CACHED_PROMPTS:
            self._prompts.popitem(last=False)  # least recently used
        return prompt, aliases

    def _load_prompt(
        self, actor: Actor, name: str, ref: int | str | None
    ) -> tuple[VersionRecord, dict[str, AliasRecord]]:
        # Calling a prompt through the gateway reads it: an ``invoke`` key may resolve the
        # prompts of its own project without holding ``read`` for the registry API.
        reader = replace(actor, scopes=actor.scopes | {Scope.READ})
        record = self.registry.get_version(reader, "prompt", name, ref)
        aliases = {a.name: a for a in self.registry.aliases(reader, "prompt", name)}
        return record, aliases

    async def model_config(
        self, actor: Actor, generation: int | None, name: str, policy: GatewayConfig
    ) -> ModelConfig | None:
        """A ``model`` artefact of the project as a deployment: its ``production`` version,
        else its latest. None when the project has no model of that name."""

        def load() -> ModelConfig | None:
            record = self._released(actor, "model", name)
            return None if record is None else model_config_from(actor.project.name, record, policy)

        return await _read_through(
            self._models, (actor.project.id, name), generation, load, "the project's models"
        )

    async def guard_policy(
        self, actor: Actor, generation: int | None, name: str | None
    ) -> GuardEngine:
        """The guard policy a call runs under (``registry.guard_policies.policy_for``),
        ready to run; rebuilt when the project changes, so a release or rollback of a policy
        is seen on the next request."""
        reader = replace(actor, scopes=actor.scopes | {Scope.READ})

        def load() -> GuardEngine:
            spec, version = policy_for(self.registry, reader, name)
            return self._shipped if version is None else GuardEngine(spec, version)

        key = (actor.project.id, name or PROJECT_POLICY)
        return await _read_through(
            self._policies, key, generation, load, "the project's guard policy"
        )

    async def index_version(self, actor: Actor, generation: int | None, ref: str) -> VersionRecord:
        """The ``index`` version ``ref`` (``NAME``, ``NAME@ALIAS``, ``NAME@N``) points at
        now: an alias moved or rolled back is seen on the next request."""
        reader = replace(actor, scopes=actor.scopes | {Scope.READ})
        name, _, version = ref.partition("@")

        def load() -> VersionRecord:
            return self.registry.get_version(reader, "index", name, version or None)

        return await _read_through(
            self._indexes, (actor.project.id, ref), generation, load, "the project's indexes"
        )

    def _released(self, actor: Actor, kind: str, name: str) -> VersionRecord | None:
        # Calling through the gateway reads the project's artefacts (as for prompts).
        reader = replace(actor, scopes=actor.scopes | {Scope.READ})
        return self.registry.released_version(reader, kind, name)

    async def prompt_version(
        self, actor: Actor, generation: int | None, name: str, version: int
    ) -> Prompt:
        prompt, _ = await self.prompt(actor, generation, name, str(version))
        return prompt


async def _read_through(
    cache: dict[tuple[int, str], tuple[T, int]],
    key: tuple[int, str],
    generation: int | None,
    load: Callable[[], T],
    what: str,
) -> T:
    """A project's artefact from a per-worker cache, reloaded (off the event loop) when the
    project's change counter moved; the cached one while the database cannot be read.
    Unknown names are cached too, so the cache is bounded."""
    cached = cache.get(key)
    if cached is not None and (generation is None or generation == cached[1]):
        return cached[0]
    if len(cache) >= MAX_CACHED_MODELS:
        cache.clear()
    try:
        value = await asyncio.to_thread(load)
    except SeamlineError:
        raise
    except Exception as exc:
        if cached is not None:
            return cached[0]
        raise Unavailable(f"cannot read {what} right now; retry shortly") from exc
    cache[key] = (value, generation or 0)
    return value


def model_config_from(project: str, record: VersionRecord, policy: GatewayConfig) -> ModelConfig:
    """A registry model configuration as the gateway's deployment settings.

    Anyone who may push to a project writes these, so they may only point where the operator
    allows: a base URL under one of ``registry_model_base_urls`` and a key from one of
    ``registry_model_key_envs``. Otherwise a tenant could send the gateway's own secrets
    (any environment variable) to a server of theirs, or make it call internal hosts."""
    spec = ModelSpec.model_validate(record.content)
    where = f"model {spec.name} v{record.number}"
    if spec.provider not in ("openai", "anthropic", "local"):
        raise InvalidInput(
            f"{where}: provider {spec.provider!r} is not served (openai, anthropic or local)",
            code="unsupported_provider",
        )
    # Every destination is checked, a provider's default included: an ``anthropic`` model
    # with no base URL calls api.anthropic.com, which the operator may not have allowed.
    base_url = spec.base_url or DEFAULT_BASE_URLS.get(spec.provider)
    if base_url is not None and not any(
        _under(base_url, prefix) for prefix in policy.registry_model_base_urls
    ):
        raise PermissionDenied(
            f"{where}: base_url is not one this gateway allows (gateway.registry_model_base_urls)",
            code="base_url_not_allowed",
        )
    if spec.api_key_env and spec.api_key_env not in policy.registry_model_key_envs:
        raise PermissionDenied(
            f"{where}: api_key_env is not one this gateway allows "
            "(gateway.registry_model_key_envs)",
            code="key_env_not_allowed",
        )
    return ModelConfig(
        name=spec.name,
        provider=spec.provider,
        upstream_model=spec.upstream_model,
        base_url=base_url,
        api_key_env=spec.api_key_env,
        prices=ModelPrices(
            input=spec.prices.input,
            output=spec.prices.output,
            cached_input=spec.prices.cached_input,
        ),
        context_window=spec.context_window,
        tier=spec.tier,
        deployment=f"registry:{project}:{spec.name}@v{record.number}",
    )


def _under(url: str, allowed: str) -> bool:
    """Same scheme, host and port as ``allowed``, and a path below its path: a plain string
    prefix would let ``https://api.openai.com.evil.example`` through.

    A URL with dot segments, percent-escapes, backslashes, a query or a fragment is refused
    rather than normalised: HTTP clients resolve ``/v1/../../escaped`` (and ``%2e%2e``)
    before sending, so the path that is checked must be the path that is called."""
    a, b = urlsplit(url), urlsplit(allowed)
    if (a.scheme, a.hostname, a.port) != (b.scheme, b.hostname, b.port) or a.username:
        return False
    if a.query or a.fragment or "%" in url or "\\" in url:
        return False
    if any(segment in (".", "..") for segment in a.path.split("/")):
        return False
    base = b.path.rstrip("/")
    return a.path == base or a.path.startswith(base + "/") or not base
