"""The gateway's cached view of keys and prompts stays exact under races and odd input."""

from __future__ import annotations

import asyncio

import pytest

from seamline.core.errors import AuthenticationFailed
from seamline.gateway.stages.registry_view import RegistryView
from seamline.gateway.stores.changes import probe_for
from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope


class RevokedWhileLoading(Registry):
    """A registry where an admin revokes the key just after the gateway has read it: the
    window between loading a key and reading the project's change counter."""

    def __init__(self, registry: Registry, admin: Actor, key_id: str) -> None:
        super().__init__(registry.db, key_secret=registry.key_secret)
        self.admin, self.key_id, self.revoked = admin, key_id, False

    def authenticate(self, plaintext_key: str) -> Actor:
        actor = super().authenticate(plaintext_key)
        if not self.revoked:
            self.revoked = True
            self.revoke_key(self.admin, self.key_id)
        return actor


def _key(registry: Registry, alice: Actor) -> tuple[str, str]:
    key, info = registry.create_key(
        alice, owner="svc", scopes=frozenset({Scope.INVOKE}), name="svc"
    )
    return key, info.id


async def _authenticate(view: RegistryView, key: str) -> Actor:
    actor, _ = await view.authenticate(key)
    return actor


@pytest.mark.parametrize("warm", [False, True], ids=["first-sighting", "cached"])
def test_a_revocation_racing_the_key_load_takes_effect_on_the_next_request(
    registry: Registry, alice: Actor, warm: bool
) -> None:
    key, key_id = _key(registry, alice)
    racing = RevokedWhileLoading(registry, alice, key_id)
    view = RegistryView(racing, probe_for(registry.db))
    if warm:
        # The key is cached; another change of the project makes the next request reload it,
        # and the revocation lands between that reload and the counter read.
        racing.revoked = True
        asyncio.run(_authenticate(view, key))
        asyncio.run(_authenticate(view, key))
        registry.set_content_logging(alice, "redacted")
        racing.revoked = False
    asyncio.run(_authenticate(view, key))  # loaded just before the revocation committed
    assert racing.revoked
    with pytest.raises(AuthenticationFailed) as refused:
        asyncio.run(_authenticate(view, key))
    assert refused.value.code == "revoked_api_key"
    asyncio.run(view.probe.close())


def test_spellings_of_one_version_share_one_cache_entry_and_the_cache_is_bounded(
    registry: Registry, alice: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seamline.gateway.stages import registry_view
    from tests.factories import prompt_draft

    for text in ("Hello {{ who }}!", "Hi {{ who }}!", "Hey {{ who }}!"):
        registry.push(alice, [prompt_draft(text=text)])
    view = RegistryView(registry, probe_for(registry.db))

    async def resolve(ref: str) -> int:
        prompt, _ = await view.prompt(alice, None, "greeter", ref)
        return prompt.version

    assert {asyncio.run(resolve(ref)) for ref in ("1", "01", "v1", "v001", "0001")} == {1}
    assert len(view._prompts) == 1
    monkeypatch.setattr(registry_view, "MAX_CACHED_PROMPTS", 2)
    assert [asyncio.run(resolve(ref)) for ref in ("2", "3", "latest")] == [2, 3, 3]
    assert len(view._prompts) == 2
    asyncio.run(view.probe.close())
