"""Secret detection: each kind found with its exact span, look-alikes and placeholders pass.

Every key here is fake and assembled by concatenation, so that no complete key-shaped string
sits in the source for a push-protection scanner to trip on.
"""

from __future__ import annotations

import base64
import json

import pytest

from seamline.guards.findings import SECRET
from seamline.guards.secrets import SECRET_LABELS, SecretDetector, shannon_entropy

DETECTOR = SecretDetector()

# Random-looking bodies (entropy > 4 bits per character), made up for these tests.
ALNUM = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6" * 2
LETTERS = "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGhIjKl"
HEX = "0123456789abcdef0123456789abcdef"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"


def b64url(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


JWT = b64url({"alg": "HS256", "typ": "JWT"}) + "." + b64url({"sub": "42"}) + ".c2lnbmF0dXJl"
PEM = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAx7fakefakefakefakefakefakefakefakefake\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n"
    "-----END RSA " + "PRIVATE KEY-----"
)


def found(text: str) -> list[tuple[str, str]]:
    return [(f.label, text[f.start or 0 : f.end]) for f in DETECTOR.scan(text)]


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("aws_access_key", AWS_KEY_ID),
        ("aws_access_key", "ASIA" + "Q3EGRTYU2BXN5ZPK"),
        ("gcp_api_key", "AIza" + ALNUM[:35]),
        ("openai_key", "sk-proj-" + ALNUM[:48]),
        ("openai_key", "sk-" + ALNUM[:48]),
        ("anthropic_key", "sk-ant-api03-" + ALNUM[:40]),
        ("github_token", "ghp_" + ALNUM[:36]),
        ("github_token", "gho_" + ALNUM[1:37]),
        ("github_token", "ghs_" + ALNUM[2:38]),
        ("github_token", "github_pat_" + ALNUM[:22] + "_" + ALNUM[:59]),
        ("gitlab_token", "glpat-" + ALNUM[:20]),
        ("slack_token", "xoxb-" + "1234567890-1234567890123-" + LETTERS[:24]),
        ("slack_token", "xoxp-" + "2345678901-" + ALNUM[:20]),
        ("stripe_key", "sk_live_" + ALNUM[:24]),
        ("stripe_key", "rk_live_" + ALNUM[3:27]),
        ("google_oauth_token", "ya29." + ALNUM[:30] + "-" + ALNUM[:10]),
        ("huggingface_token", "hf_" + LETTERS[:34]),
        ("sendgrid_key", "SG." + ALNUM[:22] + "." + ALNUM[:43]),
        ("twilio_api_key", "SK" + HEX),
        ("jwt", JWT),
        ("jwt", b64url({"alg": "none"}) + "." + b64url({"sub": "42"}) + "."),
        ("private_key", PEM),
    ],
)
def test_each_secret_is_found_with_its_exact_span(label: str, value: str) -> None:
    text = f"here it is: {value} (do not share)"

    assert found(text) == [(label, value)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"password = {ALNUM[:14]}", ALNUM[:14]),
        ('"password": "Tr0ub4dor&3x! horse"', "Tr0ub4dor&3x! horse"),
        (f"DB_PASSWORD='{ALNUM[5:17]}'", ALNUM[5:17]),
        (f"api_key: {HEX[:20]}", HEX[:20]),
        (f"OPENAI_API_KEY={ALNUM[:20]}", ALNUM[:20]),
        (f"client_secret={ALNUM[7:31]}", ALNUM[7:31]),
        (f"https://api.example.com/v1?access_token={ALNUM[:24]}&page=2", ALNUM[:24]),
        (f"Authorization: Bearer {ALNUM[:32]}", ALNUM[:32]),
    ],
)
def test_a_high_entropy_value_assigned_to_a_secret_name_is_found(text: str, value: str) -> None:
    assert found(text) == [("generic_secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "password=changeme",  # a word: 2.75 bits per character
        "password: hunter22",
        "password=s3cr3t!",  # 7 characters: too short to judge
        "api_key=YOUR_API_KEY_HERE",
        "api_key=your-api-key-here",
        "token = os.environ['TOKEN']",
        "token = get_token()",
        "secret_key = settings.SECRET_KEY",
        "OPENAI_API_KEY=OPENAI_API_KEY_VALUE",
        "password: ${DB_PASSWORD}",
        "password: '{{ vault_password }}'",
        "max_tokens: 1024, tokens=512",
        "the token expires in 3600 seconds",
    ],
)
def test_placeholders_words_and_code_in_assignments_are_not_secrets(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "sk-" + "x" * 24,  # documentation placeholder
        "ghp_" + "0" * 36,
        "AKIA" + "A" * 16,
        "use scikit-learn and sk-learn-style estimators",
        "Request id 123e4567-e89b-12d3-a456-426614174000.",
        "Commit 9fceb02d0ae598e95dc970b74767f19372d61af8.",
        "-----BEGIN PUBLIC "
        + "KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "-----BEGIN " + "CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        b64url({"typ": "JWT"}) + "." + b64url({"sub": "42"}) + ".c2ln",  # no "alg"
        "eyJ" + "notbase64json" + ".eyJzdWIiOiI0MiJ9.c2ln",
        AWS_SECRET,  # 40 base64 characters with no key id or name beside them
        "xyzAKIA" + "IOSFODNN7EXAMPLE",  # inside a longer token
    ],
)
def test_look_alikes_are_not_secrets(text: str) -> None:
    assert found(f"see {text} here") == []


def test_an_aws_secret_key_is_found_next_to_its_key_id() -> None:
    text = f"AKID,SECRET\n{AWS_KEY_ID},{AWS_SECRET}\n"

    assert found(text) == [("aws_access_key", AWS_KEY_ID), ("aws_secret_key", AWS_SECRET)]


def test_an_aws_secret_key_is_found_by_its_name() -> None:
    text = f"[default]\naws_secret_access_key = {AWS_SECRET}\n"

    assert found(text) == [("aws_secret_key", AWS_SECRET)]


def test_a_git_sha_next_to_a_key_id_is_not_an_aws_secret() -> None:
    text = f"{AWS_KEY_ID} 9fceb02d0ae598e95dc970b74767f19372d61af8"

    assert found(text) == [("aws_access_key", AWS_KEY_ID)]


def test_azure_account_and_shared_access_keys_are_found_in_connection_strings() -> None:
    account_key = base64.b64encode(bytes(range(7, 71))).decode()  # 64 bytes: 88 characters
    access_key = base64.b64encode(bytes(range(90, 122))).decode()  # 32 bytes: 44 characters
    text = (
        "DefaultEndpointsProtocol=https;AccountName=acct;"
        f"AccountKey={account_key};EndpointSuffix=core.windows.net\n"
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;"
        f"SharedAccessKey={access_key}"
    )

    assert found(text) == [
        ("azure_storage_key", account_key),
        ("azure_shared_access_key", access_key),
    ]


def test_a_begin_line_alone_masks_to_the_end_of_the_text() -> None:
    text = "key:\n-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"

    assert found(text) == [("private_key", text[5:])]


def test_two_private_keys_are_two_findings() -> None:
    text = f"{PEM}\nand\n{PEM.replace('RSA', 'EC')}"

    assert [label for label, _ in found(text)] == ["private_key", "private_key"]


def test_a_vendor_key_in_an_assignment_is_one_finding_named_by_the_vendor() -> None:
    key = "ghp_" + ALNUM[:36]

    findings = DETECTOR.scan(f"GITHUB_TOKEN={key}")

    assert [(f.label, f.score) for f in findings] == [("github_token", 0.95)]


def test_findings_name_the_detector_and_category() -> None:
    findings = DETECTOR.scan(f"{AWS_KEY_ID} {JWT}")

    assert {(f.detector, f.category) for f in findings} == {("secrets", SECRET)}
    assert {f.label: f.score for f in findings} == {"aws_access_key": 0.95, "jwt": 1.0}


def test_labels_restrict_what_is_looked_for() -> None:
    detector = SecretDetector(labels=["jwt"])

    assert [f.label for f in detector.scan(f"{AWS_KEY_ID} {JWT}")] == ["jwt"]
    with pytest.raises(ValueError, match="unknown secret labels"):
        SecretDetector(labels=["jwt", "launch_codes"])
    assert {"aws_access_key", "private_key", "jwt", "openai_key"} <= set(SECRET_LABELS)


def test_entropy_is_measured_in_bits_per_character() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    assert shannon_entropy("password") == pytest.approx(2.75)


def test_text_outside_ascii_keeps_offsets_right() -> None:
    # "İ" lower-cases to two characters: the keyword search must not shift the spans.
    text = f"İİİ password={ALNUM[:16]} ünïcödé"

    assert found(text) == [("generic_secret", ALNUM[:16])]


@pytest.mark.parametrize(
    "unit",
    [
        f"{AWS_KEY_ID} {AWS_SECRET} password={ALNUM[:16]} {JWT}\n",
        "AKIA",
        "eyJ",
        "eyJhbGciOiJub25lIn0.",
        "-----BEGIN RSA " + "PRIVATE KEY-----\n",
        "password=",
        "token: ",
        "a",
        "sk-",
        "A1b2",
        "=" * 40 + " ",
    ],
)
def test_a_one_megabyte_message_returns(unit: str) -> None:
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]

    findings = DETECTOR.scan(text)

    assert all(0 <= (f.start or 0) < (f.end or 0) <= len(text) for f in findings)
