"""Schemathesis drives every operation in /openapi.json with generated input: no 5xx.

Run through Hypothesis directly rather than schemathesis' pytest plugin, whose fixture
integration does not work with pytest 9."""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, given, settings

from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from tests.gateway.conftest import RunningGateway

EXAMPLES_PER_OPERATION = 12


def test_no_operation_answers_5xx(
    start_gateway: Callable[..., RunningGateway], registry: Registry, alice: Actor
) -> None:
    gateway = start_gateway()
    key, _ = registry.create_key(alice, owner="fuzz", scopes=frozenset({Scope.ADMIN}), name="fuzz")
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"})
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> "
                    f"{response.status_code}: {response.text[:200]}"
                )

        check()
    assert calls >= 3 * len(operations)
    assert failures == []
