"""Masking, reversible pseudonymisation, and both over streams cut at arbitrary points.

Synthetic values only; fake keys are assembled by concatenation.
"""

from __future__ import annotations

import base64
import itertools
import json
import random

import pytest

from seamline.guards.findings import PII, SECRET, Detector, Finding
from seamline.guards.pii import PiiDetector
from seamline.guards.redact import Pseudonymiser, mask, mask_token, merge_overlapping
from seamline.guards.secrets import KEYWORD_LITERALS, SecretDetector
from seamline.guards.stream_scan import MIN_WINDOW, StreamScanner

DETECTORS: list[Detector] = [PiiDetector(), SecretDetector()]
EMAIL = "jane.doe@example.com"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
PROSE = "The quarterly report is attached and the numbers look fine to me. " * 6


def scan(text: str) -> list[Finding]:
    return [finding for detector in DETECTORS for finding in detector.scan(text)]


def at(text: str, value: str, label: str, score: float = 1.0) -> Finding:
    start = text.index(value)
    return Finding("test", PII, label, score, start, start + len(value))


def b64url(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# --- mask --------------------------------------------------------------------------------------


def test_mask_replaces_each_span_with_its_label_in_brackets() -> None:
    text = f"Mail {EMAIL}, key {AWS_KEY_ID}, card 4111 1111 1111 1111."

    assert mask(text, scan(text)) == "Mail [EMAIL], key [AWS_ACCESS_KEY], card [PAYMENT_CARD]."


def test_mask_merges_overlapping_spans_under_the_more_certain_label() -> None:
    text = "x 0123456789ABCDEF y"
    findings = [at(text, "0123456789", "phone", 0.8), at(text, "456789ABCDEF", "iban", 1.0)]

    assert mask(text, findings) == "x [IBAN] y"


def test_mask_keeps_adjacent_spans_apart_and_ignores_findings_without_a_span() -> None:
    text = "ab"
    findings = [
        at(text, "a", "first"),
        at(text, "b", "second"),
        Finding("rules", "injection", "override", 1.0),
    ]

    assert mask(text, findings) == "[FIRST][SECOND]"
    assert mask(text, []) == "ab"


def test_mask_tokens_are_labels_in_upper_snake_case() -> None:
    assert mask_token("aws_access_key") == "[AWS_ACCESS_KEY]"
    assert mask_token("injection.rules") == "[INJECTION_RULES]"


def test_merge_keeps_order_and_the_best_finding_of_each_group() -> None:
    text = "aaaa bbbb"
    best = at(text, "aaaa", "long", 0.9)
    merged = merge_overlapping([at(text, "bbbb", "b"), at(text, "aa", "short", 0.5), best])

    assert [(f.label, f.start, f.end) for f in merged] == [("long", 0, 4), ("b", 5, 9)]
    assert merged[0] is best  # unchanged findings are not copied


# --- pseudonymise and restore ------------------------------------------------------------------


def test_pseudonymise_gives_each_distinct_value_a_stable_placeholder() -> None:
    text = f"{EMAIL} wrote to bob@example.org and cc'd {EMAIL}; key {AWS_KEY_ID}"
    pseudonymiser = Pseudonymiser()

    sent = pseudonymiser.pseudonymise(text, scan(text))

    assert sent == "<EMAIL_1> wrote to <EMAIL_2> and cc'd <EMAIL_1>; key <AWS_ACCESS_KEY_1>"
    assert pseudonymiser.used


def test_restore_puts_originals_back_wherever_the_model_echoed_them() -> None:
    text = f"Please reply to {EMAIL} about card 4111 1111 1111 1111."
    pseudonymiser = Pseudonymiser()
    pseudonymiser.pseudonymise(text, scan(text))
    answer = "Sure: <EMAIL_1> will get it. (<EMAIL_1>, card <PAYMENT_CARD_1>)"

    assert pseudonymiser.restore(answer) == (
        f"Sure: {EMAIL} will get it. ({EMAIL}, card 4111 1111 1111 1111)"
    )


def test_pseudonymise_then_restore_is_the_identity() -> None:
    text = f"From {EMAIL} (+44 20 7946 0958), IBAN GB82 WEST 1234 5698 7654 32, {AWS_KEY_ID}."
    pseudonymiser = Pseudonymiser()

    sent = pseudonymiser.pseudonymise(text, scan(text))

    assert EMAIL not in sent and AWS_KEY_ID not in sent
    assert pseudonymiser.restore(sent) == text


def test_unknown_placeholders_are_left_alone() -> None:
    pseudonymiser = Pseudonymiser()
    pseudonymiser.pseudonymise(EMAIL, scan(EMAIL))

    assert pseudonymiser.restore("<EMAIL_2> <PHONE_1> <EMAIL_1> <email_1>") == (
        f"<EMAIL_2> <PHONE_1> {EMAIL} <email_1>"
    )


def test_one_pseudonymiser_shares_placeholders_across_the_messages_of_a_call() -> None:
    pseudonymiser = Pseudonymiser()
    first = f"I am {EMAIL}"
    second = f"Again, {EMAIL}, and also bob@example.org"

    assert pseudonymiser.pseudonymise(first, scan(first)) == "I am <EMAIL_1>"
    assert (
        pseudonymiser.pseudonymise(second, scan(second)) == "Again, <EMAIL_1>, and also <EMAIL_2>"
    )


def test_a_placeholder_already_in_the_text_is_not_handed_out() -> None:
    text = f"Template uses <EMAIL_1> literally; my address is {EMAIL}"
    pseudonymiser = Pseudonymiser()

    sent = pseudonymiser.pseudonymise(text, scan(text))

    assert sent == "Template uses <EMAIL_1> literally; my address is <EMAIL_2>"
    assert pseudonymiser.restore(sent) == text


def test_nothing_pseudonymised_means_nothing_to_restore() -> None:
    pseudonymiser = Pseudonymiser()

    assert pseudonymiser.pseudonymise("no pii here", []) == "no pii here"
    assert not pseudonymiser.used
    assert pseudonymiser.restore("<EMAIL_1>") == "<EMAIL_1>"


def test_originals_never_appear_in_reprs() -> None:
    text = f"{EMAIL} {AWS_KEY_ID}"
    pseudonymiser = Pseudonymiser()
    pseudonymiser.pseudonymise(text, scan(text))
    restorer = pseudonymiser.restorer()
    restorer.feed("partial <EMAIL_")
    scanner = StreamScanner(DETECTORS)
    scanner.feed(text)

    for obj in (pseudonymiser, restorer, scanner):
        assert EMAIL not in repr(obj) and AWS_KEY_ID not in repr(obj)
        assert "jane" not in repr(obj) and "AKIA" not in repr(obj)


# --- streaming restore -------------------------------------------------------------------------


def pseudonymised(text: str) -> tuple[Pseudonymiser, str]:
    pseudonymiser = Pseudonymiser()
    return pseudonymiser, pseudonymiser.pseudonymise(text, scan(text))


def test_a_placeholder_split_at_any_point_is_restored() -> None:
    pseudonymiser, _ = pseudonymised(f"{EMAIL} and 4111 1111 1111 1111")
    answer = "Sent to <EMAIL_1>, charged <PAYMENT_CARD_1>; <EMAIL_1> again <b>bold</b> <EMAIL_"
    expected = pseudonymiser.restore(answer)

    for cut in range(len(answer) + 1):
        restorer = pseudonymiser.restorer()
        pieces = [restorer.feed(answer[:cut]), restorer.feed(answer[cut:]), restorer.flush()]
        assert "".join(pieces) == expected, cut


def test_a_stream_in_random_small_chunks_is_restored() -> None:
    pseudonymiser, _ = pseudonymised(f"{EMAIL} {AWS_KEY_ID}")
    answer = "Use <AWS_ACCESS_KEY_1> for <EMAIL_1>. " * 20
    rng = random.Random(5)
    chunks = []
    position = 0
    while position < len(answer):
        size = rng.randint(1, 7)
        chunks.append(answer[position : position + size])
        position += size

    assert "".join(pseudonymiser.restore_stream(chunks)) == pseudonymiser.restore(answer)


def test_the_restorer_holds_back_only_what_may_start_a_placeholder() -> None:
    pseudonymiser, _ = pseudonymised(EMAIL)
    restorer = pseudonymiser.restorer()

    assert restorer.feed("plain text, a < b, ") == "plain text, a < b, "
    assert restorer.feed("see <EMA") == "see "
    assert restorer.feed("IL_1> now") == f"{EMAIL} now"
    assert restorer.feed("<EMAIL_1 but not closed and long") == "<EMAIL_1 but not closed and long"
    assert restorer.feed(" end <") == " end "
    assert restorer.flush() == "<"


def test_without_placeholders_the_stream_passes_through_at_once() -> None:
    restorer = Pseudonymiser().restorer()

    assert restorer.feed("<EMA") == "<EMA"
    assert restorer.flush() == ""


# --- stream scanning ---------------------------------------------------------------------------

JWT = (
    b64url({"alg": "HS256", "typ": "JWT", "kid": "k" * 200}) + "." + b64url({"sub": "4"}) + ".c2ln"
)
PEM = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\n"
    + "\n".join("MIIEowIBAAKCAQEAx7" + "AbCdEf0123456789" * 3 for _ in range(8))
    + "\n-----END RSA " + "PRIVATE KEY-----"
)  # fmt: skip


def streamed(
    text: str, cuts: list[int], stride: int = 32, *, early: bool = False
) -> tuple[str, StreamScanner]:
    scanner = StreamScanner(
        DETECTORS, window=MIN_WINDOW, stride=stride, early=early, loud_words=KEYWORD_LITERALS
    )
    bounds = [0, *cuts, len(text)]
    pieces = [scanner.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    return "".join(pieces) + scanner.flush(), scanner


@pytest.mark.parametrize(
    "secret",
    [
        EMAIL,
        AWS_KEY_ID,
        "+44 20 7946 0958",
        "GB82 WEST 1234 5698 7654 32",
        "password=" + "Tr0ub4dor3xQ9",
        "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        JWT,  # longer than the window
        PEM,  # longer than the window, several lines
        "Bearer qwertyuiopasdfgh",  # plain letters: loud by its keyword
        "password: qwertyuiopzx",
    ],
)
@pytest.mark.parametrize("early", [False, True])
def test_a_secret_split_at_every_position_across_two_chunks_is_masked(
    secret: str, early: bool
) -> None:
    text = f"{PROSE}Here: {secret}\nThanks. {PROSE}"
    expected = mask(text, scan(text))
    start = text.index(secret)
    sensitive = secret.split("=")[-1]

    for cut in range(start - 2, start + len(secret) + 3):
        output, _ = streamed(text, [cut], early=early)
        assert output == expected, cut
        assert sensitive not in output


@pytest.mark.parametrize("early", [False, True])
def test_a_stream_in_random_small_chunks_is_masked_like_the_whole_text(early: bool) -> None:
    text = f"{PROSE} {EMAIL} then {JWT} and {PEM}\n{AWS_KEY_ID} {PROSE} 4111 1111 1111 1111."
    rng = random.Random(11)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 60))
        output, _ = streamed(text, cuts, early=early)
        assert output == mask(text, scan(text))


@pytest.mark.parametrize("early", [False, True])
def test_a_stream_fed_one_character_at_a_time_is_masked_like_the_whole_text(early: bool) -> None:
    # With a scan on every character, the emission boundary falls at every position of every
    # secret once.
    text = (
        f"{PROSE}mail {EMAIL}, call +44 20 7946 0958, IBAN GB82 WEST 1234 5698 7654 32, "
        f"key {AWS_KEY_ID} token=Tr0ub4dor3xQ9 {JWT} {PROSE}"
    )

    output, _ = streamed(text, list(range(1, len(text))), stride=1, early=early)

    assert output == mask(text, scan(text))


@pytest.mark.parametrize("early", [False, True])
def test_stream_findings_carry_spans_in_the_stream_as_received(early: bool) -> None:
    text = f"{PROSE}{EMAIL} and {PEM} end {AWS_KEY_ID} {PROSE}"
    cuts = list(range(40, len(text), 40))

    _, scanner = streamed(text, cuts, early=early)

    assert [(f.label, f.start, f.end) for f in scanner.findings] == [
        (f.label, f.start, f.end) for f in merge_overlapping(scan(text))
    ]


def test_a_private_key_cut_off_by_the_end_of_the_stream_is_masked_from_its_begin_line() -> None:
    text = f"{PROSE}key:\n{PEM[:300]}"

    output, _ = streamed(text, list(range(10, len(text), 10)))

    assert output == f"{PROSE}key:\n[PRIVATE_KEY]"


def test_text_after_a_long_private_key_flows_again() -> None:
    text = f"{PROSE}{PEM}\nAll done, thanks. {PROSE}"

    output, _ = streamed(text, list(range(7, len(text), 7)))

    assert output == f"{PROSE}[PRIVATE_KEY]\nAll done, thanks. {PROSE}"


def test_the_scanner_holds_back_a_bounded_window() -> None:
    scanner = StreamScanner(DETECTORS, window=MIN_WINDOW, stride=16)
    text = PROSE * 3
    emitted = ""
    for position in range(0, len(text), 10):
        emitted += scanner.feed(text[position : position + 10])
        longest_word = max(map(len, text[: position + 10].split()))
        assert len(emitted) >= position + 10 - MIN_WINDOW - 16 - longest_word

    assert emitted + scanner.flush() == text


def test_quiet_words_leave_at_once_and_a_loud_word_waits_for_the_window() -> None:
    scanner = StreamScanner(DETECTORS, early=True, loud_words=KEYWORD_LITERALS)
    sent = [scanner.feed(word) for word in ("The ", "refund ", "takes ", "two ", "wee")]
    # a word leaves once the next one has ended (a NINO starts with a word of letters)
    assert sent == ["", "The ", "refund ", "takes ", ""]
    assert scanner.feed("ks. Mail jane") == "two weeks. "
    assert scanner.feed(".doe@exam") == ""  # "jane.doe@exam" holds a symbol: loud
    assert scanner.feed("ple.com today.") == ""  # and what follows it waits with it
    assert scanner.flush() == "Mail [EMAIL] today."
    token = StreamScanner(DETECTORS, early=True, loud_words=KEYWORD_LITERALS)
    assert token.feed("Send the token ") == "Send "  # a secret's keyword is loud
    assert token.feed("abcdefghij and ") == ""  # and nothing leaves early after it


QUIET_TRAPS = [
    "password: qwertyuiopasdf",  # a plain-letter value after its keyword
    'password = "purple monkey dishwasher tango"',  # a quoted value of quiet words
    "Bearer qwertyuiopasd",
    "AB 12 34 56 C",  # a UK NINO: it starts with a word of letters
    "X 1234567 L",  # a Spanish NIE
    EMAIL,
    AWS_KEY_ID,
    "+44 20 7946 0958",
    "[the docs](https://collector.example/x?d=1)",
]
FILLER = [
    "the",
    "a",
    "report",
    "42",
    "ok",
    "numbers",
    "7.5%",
    "[link](x)",
    "look",
    "fine",
    "to",
    "me",
    "and",
    "then",
]


def test_early_streams_are_masked_like_the_whole_text_around_every_trap() -> None:
    # Random prose with numbers and markup around each trap, cut in random chunks: the cut
    # of the window lands anywhere, also right after a keyword.
    rng = random.Random(5)
    for _ in range(300):
        words = [rng.choice(FILLER) for _ in range(rng.randrange(0, 60))]
        words.insert(rng.randrange(0, len(words) + 1), rng.choice(QUIET_TRAPS))
        text = " ".join(words) + " " + " ".join(rng.choice(FILLER) for _ in range(30))
        cuts = sorted(rng.sample(range(1, len(text)), rng.randrange(1, len(text) // 2)))
        output, _ = streamed(text, cuts, early=True)
        assert output == mask(text, scan(text)), text


def test_a_failed_quiet_match_is_linear() -> None:
    # single capitals joined by hyphens could be split two ways each: seconds per feed
    spelled = "-".join("SUPERCALIFRAGILISTICEXPIALIDOCIOUSABCDEFGHIJKLMNOPQRST") + "-"
    scanner = StreamScanner(DETECTORS, early=True, loud_words=KEYWORD_LITERALS)
    sent = "".join(scanner.feed(char) for char in "Spelled: " + spelled + "x end. ")
    assert (sent + scanner.flush()).startswith("Spelled: S-U-P")


def test_without_early_the_first_output_waits_for_the_window() -> None:
    scanner = StreamScanner(DETECTORS, window=MIN_WINDOW, stride=16)
    assert scanner.feed(PROSE[: MIN_WINDOW + 15]) == ""


def test_the_scanner_checks_its_settings_and_refuses_feeding_after_flush() -> None:
    with pytest.raises(ValueError, match="window"):
        StreamScanner(DETECTORS, window=MIN_WINDOW - 1)
    with pytest.raises(ValueError, match="stride"):
        StreamScanner(DETECTORS, stride=0)
    scanner = StreamScanner(DETECTORS)
    scanner.flush()
    with pytest.raises(RuntimeError):
        scanner.feed("more")


def test_detected_categories_in_a_stream_are_those_of_the_detectors() -> None:
    _, scanner = streamed(f"{PROSE}{EMAIL} {AWS_KEY_ID}", [100])

    assert [f.category for f in scanner.findings] == [PII, SECRET]
