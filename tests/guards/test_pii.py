"""PII detection: each entity found with its exact span, validators reject, look-alikes pass.

Every value here is synthetic: documentation examples, card networks' test numbers, or
numbers made up for these tests with valid checksums.
"""

from __future__ import annotations

import pytest

from seamline.guards.findings import PII
from seamline.guards.pii import PII_LABELS, PiiDetector

DETECTOR = PiiDetector()


def found(text: str) -> list[tuple[str, str]]:
    return [(f.label, text[f.start or 0 : f.end]) for f in DETECTOR.scan(text)]


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("email", "jane.doe+news@mail.example.org"),
        ("email", "J_Smith@example.co.uk"),
        ("phone", "+44 20 7946 0958"),
        ("phone", "+1 (415) 555-0132"),
        ("phone", "+4915112345678"),
        ("phone", "+33 1 23 45 67 89"),
        ("phone", "(415) 555-2671"),
        ("phone", "415-555-2671"),
        ("phone", "415.555.2671"),
        ("phone", "1-800-555-0199"),
        ("phone", "020 7946 0958"),
        ("phone", "01 23 45 67 89"),
        ("phone", "06.12.34.56.78"),
        ("phone", "030/12345678"),
        ("payment_card", "4111 1111 1111 1111"),
        ("payment_card", "4111111111111111"),
        ("payment_card", "5555-5555-5555-4444"),
        ("payment_card", "3782 822463 10005"),
        ("payment_card", "6011111111111117"),
        ("iban", "GB82 WEST 1234 5698 7654 32"),
        ("iban", "DE89370400440532013000"),
        ("iban", "NL02ABNA0123456789"),
        ("iban", "FR76 3000 6000 0112 3456 7890 189"),
        ("us_ssn", "536-22-8041"),
        ("uk_nino", "AB 12 34 56 C"),
        ("uk_nino", "JG103759A"),
        ("fr_nir", "1 84 12 76 451 089 46"),
        ("fr_nir", "293027512345668"),
        ("fr_nir", "1 93 03 2A 004 012 34"),
        ("de_tax_id", "39170342364"),
        ("de_tax_id", "28 365 461 076"),
        ("es_dni", "87654321X"),
        ("es_dni", "23456789-D"),
        ("es_nie", "Y7654321G"),
        ("es_nie", "Z-1234567-R"),
        ("it_fiscal_code", "BNCGLI80A41H501C"),
        ("it_fiscal_code", "VRDLCU75M12F205J"),
        ("ip_address", "203.0.113.7"),
        ("ip_address", "2001:db8::8a2e:370:7334"),
        ("ip_address", "fe80::1"),
    ],
)
def test_each_entity_is_found_with_its_exact_span(label: str, value: str) -> None:
    text = f"Please note: {value}, thanks."

    assert found(text) == [(label, value)]


def test_findings_name_the_detector_and_category_and_carry_scores() -> None:
    text = "card 4111 1111 1111 1111, phone +44 20 7946 0958, mail a.b@example.com"

    findings = DETECTOR.scan(text)

    assert {(f.detector, f.category) for f in findings} == {("pii", PII)}
    scores = {f.label: f.score for f in findings}
    assert scores["payment_card"] == 1.0  # Luhn-validated
    assert scores["phone"] < scores["email"] < 1.0  # shape only, then format only


def test_several_entities_in_one_text_keep_their_order_and_spans() -> None:
    text = "From bob@example.com (tel. 020 7946 0958) to IBAN DE89370400440532013000."

    assert found(text) == [
        ("email", "bob@example.com"),
        ("phone", "020 7946 0958"),
        ("iban", "DE89370400440532013000"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "4111111111111112",
        "9111 1111 1111 1115",  # Luhn holds, but no network issues 9...
        "4111 1111-1111 1111",  # mixed separators
        "41 11 11 11 11 11 11 11",  # not grouped like a card
        "4111 1111 1111 111 1",
        "GB82 WEST 1234 5698 7654 33",  # IBAN check digits wrong
        "GB82WEST123456987654",  # IBAN too short for GB
        "XX82 WEST 1234 5698 7654 32",  # no such country
        "000-12-3456",  # SSN area 000
        "666-12-3456",  # SSN area 666
        "912-34-5678",  # SSN area 9xx
        "536-00-8041",  # SSN group 00
        "536-22-0000",  # SSN serial 0000
        "078-05-1120",  # the void advertising SSN
        "QQ 12 34 56 C",  # HMRC's example NINO: Q is never a first letter
        "GB 12 34 56 A",  # never-allocated NINO prefix
        "AB 12 34 56 E",  # NINO suffix is A-D
        "1 84 12 76 451 089 47",  # NIR key wrong
        "39170342365",  # Steuer-ID check digit wrong
        "12345678903",  # Steuer-ID: no digit of the first ten repeated
        "87654321A",  # DNI letter wrong
        "Y7654321A",  # NIE letter wrong
        "BNCGLI80A41H501D",  # codice fiscale check character wrong
        "999.1.2.3",  # not an IPv4 address
        "127.0.0.1 and ::1 and 0.0.0.0",  # loopback and unspecified identify nobody
        "415-155-2671",  # NANP exchanges never start with 1
        "+12 345",  # too few digits for a phone number
    ],
)
def test_values_failing_validation_are_not_flagged(text: str) -> None:
    assert found(f"value {text} end") == []


@pytest.mark.parametrize(
    "text",
    [
        "The total is $1,234.56 (EUR 1.234,56) plus 19.99 shipping.",
        "Due 2024-03-15, 15/03/2024, 03.15.2024 or 2024-03-15T10:30:00Z at 10:30:45.",
        "Upgrade to v1.2.3, version 1.2.3.4, Python 3.11.7, build 10.0.19041.1.",
        "Request id 123e4567-e89b-12d3-a456-426614174000.",
        "Commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (short a1b2c3d).",
        "ISBN 978-3-16-148410-0 and 9783161484100.",
        "Order #48213907, ticket 123456789012, invoice 2024-000123.",
        "Account 1234567890123456 is not a card number.",
        "MAC 00:1A:2B:3C:4D:5E, std::vector<int>, a::b::c, ratio 16:9.",
        "Scored +5% and -3.2%, coordinates 48.8566, 2.3522.",
        "Call me at noon; the code is 1234.",
        "Dear Mr. Smith, ABBA and NASA wrote RFC 5321 (SMTP) in 2008.",
        "Contact us at support@localhost or user@ for help.",
    ],
)
def test_benign_look_alikes_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_a_card_followed_by_its_cvv_is_found_without_the_cvv() -> None:
    assert found("card 4111 1111 1111 1111 123 exp 12/29") == [
        ("payment_card", "4111 1111 1111 1111")
    ]


def test_a_card_after_another_number_is_still_found() -> None:
    assert found("ref 1234 4111 1111 1111 1111") == [("payment_card", "4111 1111 1111 1111")]


def test_a_phone_number_followed_by_a_number_keeps_its_own_span() -> None:
    # 16 digits in all: more than E.164 allows, so the trailing group is not part of it.
    assert found("ring +44 20 7946 0958 2024 times") == [("phone", "+44 20 7946 0958")]


def test_overlapping_candidates_give_one_finding_with_the_more_certain_label() -> None:
    # The print form of this IBAN holds a phone-shaped run ("0112 3456 7890").
    assert found("IBAN FR76 3000 6000 0112 3456 7890 189.") == [
        ("iban", "FR76 3000 6000 0112 3456 7890 189")
    ]


def test_an_email_at_the_end_of_a_sentence_leaves_the_full_stop_out() -> None:
    assert found("Write to bob@example.com.") == [("email", "bob@example.com")]


def test_labels_restrict_what_is_looked_for() -> None:
    detector = PiiDetector(labels=["email", "ip_address"])
    text = "bob@example.com 4111 1111 1111 1111 203.0.113.7"

    assert [f.label for f in detector.scan(text)] == ["email", "ip_address"]


def test_an_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown PII labels"):
        PiiDetector(labels=["email", "shoe_size"])


def test_every_label_is_known_and_the_detector_repr_names_them() -> None:
    assert set(PII_LABELS) >= {"email", "phone", "payment_card", "iban", "ip_address"}
    assert "email" in repr(DETECTOR)


def test_text_without_anything_to_find_gives_nothing() -> None:
    assert DETECTOR.scan("") == []
    assert DETECTOR.scan("just words, no numbers at all") == []


@pytest.mark.parametrize(
    "unit",
    [
        "Mail bob@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111. ",
        "1",
        "1 ",
        "+1 ",
        "a@",
        "@a.",
        "::",
        "1.",
        "AB1",
        "eyJ",
        "0" * 40 + " ",
    ],
)
def test_a_one_megabyte_message_returns(unit: str) -> None:
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]

    findings = DETECTOR.scan(text)

    assert all(0 <= (f.start or 0) < (f.end or 0) <= len(text) for f in findings)
