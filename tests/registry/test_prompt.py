from __future__ import annotations

import pytest

from seamline.core.errors import InvalidInput
from seamline.registry import Prompt
from seamline.registry.specs import PromptSpec
from tests.factories import prompt_doc


def _prompt(**extra: object) -> Prompt:
    doc = prompt_doc(
        text="{{ greeting }} {{ who }}{% if times > 1 %} x{{ times }}{% endif %}",
        variables=[
            {"name": "who", "type": "string"},
            {"name": "greeting", "type": "string", "default": "Hello"},
            {"name": "times", "type": "integer", "default": 1},
        ],
        model={"provider": "openai", "name": "gpt-4o-mini"},
        parameters={"temperature": 0.3, "max_tokens": 50},
        **extra,
    )
    return Prompt(doc["name"], 1, "hash", PromptSpec.model_validate(doc))


def test_render_fills_defaults_and_returns_parameters() -> None:
    rendered = _prompt().render(who="Ada", times=2)
    assert rendered.messages[1] == {"role": "user", "content": "Hello Ada x2"}
    assert rendered.parameters == {"temperature": 0.3, "max_tokens": 50}
    assert (rendered.provider, rendered.model) == ("openai", "gpt-4o-mini")


def test_missing_unknown_and_mistyped_variables_are_refused() -> None:
    prompt = _prompt()
    with pytest.raises(InvalidInput, match="missing required variable 'who'"):
        prompt.render()
    with pytest.raises(InvalidInput, match="unknown variables: city"):
        prompt.render(who="Ada", city="Paris")
    with pytest.raises(InvalidInput, match="'times' must be integer, got str"):
        prompt.render(who="Ada", times="2")
    with pytest.raises(InvalidInput, match="must be integer, got bool"):
        prompt.render(who="Ada", times=True)


def test_templates_cannot_reach_python_internals() -> None:
    doc = prompt_doc(text="{{ who.__class__.__mro__ }}")
    prompt = Prompt("greeter", 1, "h", PromptSpec.model_validate(doc))
    with pytest.raises(InvalidInput, match="cannot render"):
        prompt.render(who="Ada")


def test_template_runtime_errors_and_huge_outputs_are_refused() -> None:
    doc = prompt_doc(
        text="{{ who * times }}",
        variables=[{"name": "who"}, {"name": "times", "type": "integer", "required": False}],
    )
    prompt = Prompt("greeter", 1, "h", PromptSpec.model_validate(doc))
    assert prompt.render(who="ab", times=2).messages[1]["content"] == "abab"
    with pytest.raises(InvalidInput, match="cannot render"):
        prompt.render(who="ab")  # times is None: str * None
    with pytest.raises(InvalidInput, match="repetition would exceed"):
        prompt.render(who="ab", times=10**9)
