"""Secret detection with spans: cloud keys, private keys, JWTs, API keys, and passwords or
tokens assigned in configuration text.

Labels name the kind of secret (``aws_access_key``, ``private_key``, ``jwt``,
``openai_key``...; all in ``SECRET_LABELS``). Spans cover the secret itself, not the
``password=`` or ``AccountKey=`` before it, so a masked line still reads as configuration.

Scores: 1.0 for private keys and JWTs (their structure is checked: a BEGIN line, a header that
decodes to JSON with ``alg``); 0.95 for vendor formats with a distinctive prefix and length;
0.9 for an AWS secret key, recognised by its shape and what stands next to it; 0.7 for a
generic assignment, recognised by its keyword and the value's entropy.

Generic assignments (``password=``, ``api_key:``, ``token=``, ``Bearer ...``) count only when
the value looks random: at least 8 characters and a Shannon entropy of at least 3.0 bits per
character (2.5 for a value made of hex digits only, whose alphabet is 16 symbols). Words and
placeholders sit below it ("password", "changeme", "hunter22": 2.75; "secret123": 2.95);
random values above it (measured over 2,000 draws: base64 or alphanumeric of 12 characters
pass 99%, of 16 or more all; hex of 16 characters passes 99% at 2.5). Gitleaks' generic rule
uses 3.5, but without a keyword to lean on; here the keyword already says "secret", so the
threshold only has to tell a value from a placeholder, and 3.5 would miss most passwords
under 12 characters. Values that are code or templating (``os.environ``, ``${TOKEN}``,
``OPENAI_API_KEY``, ``get_token()``, "your-key-here") do not count.

Vendor prefixes must also carry a random-looking body by the same measure, so
``sk-xxxxxxxxxxxxxxxxxxxx`` in documentation is not a key.

Budget, from ``bench/guard_pii.py`` on 2 shared cores: about 0.06 ms at p50 for a
2,000-character message, 0.1 ms with secrets in it. Every pattern starts with a literal and
runs only when that literal is in the text; a 1 MB message returns.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from seamline.guards.findings import SECRET, Finding
from seamline.guards.redact import merge_overlapping

# (start, end, score) of one secret.
_Hit = tuple[int, int, float]
# A finder gets the text and its ASCII-lower-cased copy (same length, same offsets).
_Finder = Callable[[str, str], Iterator[_Hit]]

STRUCTURE_CHECKED = 1.0
VENDOR_FORMAT = 0.95
PAIRED = 0.9
GENERIC = 0.7

ENTROPY_THRESHOLD = 3.0  # bits per character; see the module docstring
HEX_ENTROPY_THRESHOLD = 2.5  # for values of hex digits only (a 16-symbol alphabet)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def shannon_entropy(value: str) -> float:
    """Shannon entropy of the characters of ``value``, in bits per character."""
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in Counter(value).values()) if size else 0.0


def _random_looking(value: str) -> bool:
    hex_only = _HEX_DIGITS.issuperset(value)
    return shannon_entropy(value) >= (HEX_ENTROPY_THRESHOLD if hex_only else ENTROPY_THRESHOLD)


# --- vendor formats ----------------------------------------------------------------------------
# Every pattern runs only when its literal prefix is in the text (``in`` is a C-level search,
# a fraction of a microsecond for 2,000 characters, where a regex pass costs 1-3 us), and
# starts with that literal. A match must start a token (checked after the match: nothing
# like a key's characters before it); the named group "secret" is the span when there is one.

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class _Rule:
    label: str
    prefix: str  # a literal every match starts with
    pattern: re.Pattern[str]
    body_start: int = 0  # where the random part begins in the match, for the entropy check


def _token(label: str, prefix: str, body: str) -> _Rule:
    pattern = re.compile(rf"{re.escape(prefix)}{body}(?![A-Za-z0-9_\-])")
    return _Rule(label, prefix, pattern, body_start=len(prefix))


# AWS access key ids: AKIA (long-term) and ASIA (temporary, STS), 16 more characters.
_AWS_KEY_IDS = (
    _token("aws_access_key", "AKIA", "[A-Z0-9]{16}"),
    _token("aws_access_key", "ASIA", "[A-Z0-9]{16}"),
)

_RULES: tuple[_Rule, ...] = (
    *_AWS_KEY_IDS,
    _token("gcp_api_key", "AIza", r"[A-Za-z0-9_\-]{35}"),
    # Azure Storage account keys (64 bytes, base64) and Service Bus / Event Hubs shared access
    # keys (32 bytes), as they appear in connection strings.
    _Rule(
        "azure_storage_key",
        "AccountKey=",
        re.compile(r"AccountKey=(?P<secret>[A-Za-z0-9+/]{86}==)"),
    ),
    _Rule(
        "azure_shared_access_key",
        "SharedAccessKey=",
        re.compile(r"SharedAccessKey=(?P<secret>[A-Za-z0-9+/]{43}=)"),
    ),
    _token("anthropic_key", "sk-ant-", r"[A-Za-z0-9_\-]{20,}+"),
    # OpenAI: legacy sk-, project sk-proj-, service account sk-svcacct-, admin sk-admin-.
    _token("openai_key", "sk-", r"(?!ant-)(?:proj-|svcacct-|admin-)?+[A-Za-z0-9_\-]{20,}+"),
    # GitHub: personal (ghp_), OAuth (gho_), user-to-server (ghu_), server-to-server (ghs_) and
    # refresh (ghr_) tokens, 36 characters; fine-grained tokens are github_pat_ + 82.
    *(
        _token("github_token", prefix, "[A-Za-z0-9]{36}")
        for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
    ),
    _token("github_token", "github_pat_", "[A-Za-z0-9_]{60,}+"),
    _token("gitlab_token", "glpat-", r"[A-Za-z0-9_\-]{20,}+"),
    # Slack: bot (xoxb-), user (xoxp-), app-level (xoxa-), refresh (xoxr-), legacy (xoxs-).
    *(_token("slack_token", f"xox{kind}-", r"[A-Za-z0-9\-]{10,}+") for kind in "abprs"),
    _token("stripe_key", "sk_live_", "[A-Za-z0-9]{20,}+"),
    _token("stripe_key", "rk_live_", "[A-Za-z0-9]{20,}+"),
    _token("google_oauth_token", "ya29.", r"[A-Za-z0-9_\-]{20,}+"),
    _token("huggingface_token", "hf_", "[A-Za-z0-9]{30,}+"),
    _token("sendgrid_key", "SG.", r"[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),
    _token("twilio_api_key", "SK", "[0-9a-f]{32}"),
)


def _vendor_keys(rule: _Rule) -> _Finder:
    secret_group = "secret" in rule.pattern.groupindex

    def find(text: str, lowered: str) -> Iterator[_Hit]:
        if rule.prefix not in text:
            return
        for match in rule.pattern.finditer(text):
            if match.start() > 0 and text[match.start() - 1] in _TOKEN_CHARS:
                continue  # the middle of a longer token
            if secret_group:
                start, end = match.span("secret")
                body = match["secret"]
            else:
                start, end = match.span()
                body = match[0][rule.body_start :]
            if _random_looking(body):
                yield start, end, VENDOR_FORMAT

    return find


# --- AWS secret access keys --------------------------------------------------------------------

# 40 base64 characters are everywhere (hashes, ids); only an assignment by name or a key id
# close by makes them an AWS secret key. The assignment is matched in the lower-cased text
# (aws_secret_access_key, AWS_SECRET_ACCESS_KEY, SecretAccessKey).
_AWS_SECRET_ASSIGNED = re.compile(
    r"secret_?access_?key[\"']?\s*[:=]\s*[\"']?(?P<secret>[a-z0-9/+]{40})(?![a-z0-9/+=])"
)
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=")
_BASE64_40 = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
AWS_PAIR_DISTANCE = 100  # characters between a key id and its secret (CSV, INI, env files)


def _mixed_case_and_digits(value: str) -> bool:
    # Random base64 of 40 characters has all three with probability > 99.8%; a lower-case hex
    # digest (a git SHA) has no upper case.
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def _aws_secret_keys(text: str, lowered: str) -> Iterator[_Hit]:
    if "secret" in lowered:
        for match in _AWS_SECRET_ASSIGNED.finditer(lowered):
            start, end = match.span("secret")
            yield start, end, PAIRED
    for rule in _AWS_KEY_IDS:
        if rule.prefix not in text:
            continue
        for key_id in rule.pattern.finditer(text):
            lowest = max(0, key_id.start() - AWS_PAIR_DISTANCE - 40)
            highest = key_id.end() + AWS_PAIR_DISTANCE + 40
            for candidate in _BASE64_40.finditer(text, lowest, highest):
                # The search ends at ``highest``: a longer token cut there is not a candidate.
                cut = candidate.end() < len(text) and text[candidate.end()] in _BASE64_CHARS
                if not cut and _mixed_case_and_digits(candidate[0]):
                    yield candidate.start(), candidate.end(), PAIRED


# --- private keys ------------------------------------------------------------------------------

# PKCS#1 ("RSA PRIVATE KEY"), PKCS#8 ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"), SEC 1 ("EC"),
# OpenSSH and PGP ("PGP PRIVATE KEY BLOCK").
PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")


def _private_keys(text: str, lowered: str) -> Iterator[_Hit]:
    """Whole blocks, BEGIN to END; a block cut before its END runs to the end of the text.

    A BEGIN line alone therefore counts: text that was truncated (or a stream) after it may
    hold key material, and masking too much is the safe mistake.
    """
    position = 0
    if "-----BEGIN" not in text:
        return
    while (begin := PEM_BEGIN.search(text, position)) is not None:
        end = PEM_END.search(text, begin.end())
        if end is None:
            yield begin.start(), len(text), STRUCTURE_CHECKED
            return
        yield begin.start(), end.end(), STRUCTURE_CHECKED
        position = end.end()


# --- JWTs --------------------------------------------------------------------------------------

# header.payload.signature in base64url; a JSON header starts with '{"' which encodes as "eyJ".
# The signature is empty for alg "none".
_JWT = re.compile(
    r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{7,}+\.[A-Za-z0-9_\-]++\.[A-Za-z0-9_\-]*+"
)
_JWT_HEADER_LIMIT = 4096  # characters; real headers are under 1 KB


def _jwt_header_has_alg(segment: str) -> bool:
    if len(segment) > _JWT_HEADER_LIMIT:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):  # bad base64, bad UTF-8, bad JSON
        return False
    return isinstance(header, dict) and "alg" in header


def _jwts(text: str, lowered: str) -> Iterator[_Hit]:
    if "eyJ" not in text:
        return
    for match in _JWT.finditer(text):
        if _jwt_header_has_alg(match[0].split(".", 1)[0]):
            yield match.start(), match.end(), STRUCTURE_CHECKED


# --- generic assignments -----------------------------------------------------------------------

# Matched in the lower-cased text, one pattern per keyword so each starts with a literal. A
# keyword may end a longer name (DB_PASSWORD, client_secret, access_token); "token" covers
# access_token and auth_token. A quoted value runs to its closing quote (a password may hold
# spaces or "&"); a bare one stops at whitespace, quotes, separators and templating, and is
# not followed by a call or an index (``token = get_token()``).
_VALUE = (
    r"(?:\"(?P<double>[^\"\n]{8,256})\"|'(?P<single>[^'\n]{8,256})'"
    r"|(?P<bare>[^\s\"'`,;&<>()\[\]{}$]{8,256}+)(?![(\[]))"
)
_VALUE_GROUPS = ("double", "single", "bare")
_ASSIGNED = r"[\"']?\s*[:=]\s*"
_GENERIC: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (literal, re.compile(keyword + _VALUE))
    for literal, keyword in (
        ("pass", r"pass(?:word|wd|phrase)" + _ASSIGNED),
        ("pwd", "pwd" + _ASSIGNED),
        ("secret", r"secret(?:[_\-]?key)?" + _ASSIGNED),
        ("api", r"api[_\-]?key" + _ASSIGNED),
        ("access", r"access[_\-]?key" + _ASSIGNED),
        ("token", "token" + _ASSIGNED),
        ("bearer", r"bearer\s+"),
    )
)
# Words holding one of these may introduce a secret that is plain letters ("bearer
# qwertyuiopasdf"): a stream must hold them back (``stream_scan``'s loud words).
KEYWORD_LITERALS: tuple[str, ...] = tuple(literal for literal, _ in _GENERIC)
# In a value, these mark a placeholder or a template, not a secret.
_PLACEHOLDER_MARKS = (
    "your",
    "example",
    "placeholder",
    "changeme",
    "redacted",
    "dummy",
    "xxxx",
    "${",
    "{{",
    "%(",
)
# A code reference (os.environ, self.token) or an environment variable's name (OPENAI_API_KEY).
_CODE_REFERENCE = re.compile(r"[A-Za-z_]+(?:\.[A-Za-z_]+)+|[A-Z]+(?:_[A-Z]+)+")


def _generic_secrets(text: str, lowered: str) -> Iterator[_Hit]:
    for literal, pattern in _GENERIC:
        if literal not in lowered:
            continue
        for match in pattern.finditer(lowered):
            group = next(name for name in _VALUE_GROUPS if match[name] is not None)
            start, end = match.span(group)
            value = text[start:end]
            if (
                _random_looking(value)
                and _CODE_REFERENCE.fullmatch(value) is None
                and not any(mark in match[group] for mark in _PLACEHOLDER_MARKS)
            ):
                yield start, end, GENERIC


# --- the detector ------------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _lower_same_length(text: str) -> str:
    """``text`` lower-cased in ASCII only, so every offset stays valid.

    ``str.lower`` may change the length outside ASCII ("İ" becomes two characters).
    """
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _finders() -> dict[str, list[_Finder]]:
    finders: dict[str, list[_Finder]] = {
        "aws_secret_key": [_aws_secret_keys],
        "private_key": [_private_keys],
        "jwt": [_jwts],
    }
    for rule in _RULES:
        finders.setdefault(rule.label, []).append(_vendor_keys(rule))
    finders["generic_secret"] = [_generic_secrets]
    return finders


_FINDERS = _finders()
SECRET_LABELS: tuple[str, ...] = tuple(_FINDERS)


class SecretDetector:
    """Finds secrets with spans, one finding per secret, labelled by kind.

    ``labels`` restricts the scan to some of ``SECRET_LABELS``; an unknown label raises
    ``ValueError``. A vendor key inside a generic assignment (``token=ghp_...``) gives one
    finding, labelled by the vendor. ``untrusted`` changes nothing.
    """

    name = "secrets"
    # What it finds holds a digit, a symbol or a long run (or follows one of these words):
    # a stream may send quiet words at once (``stream_scan``).
    finds_only_loud_text = True
    loud_words = KEYWORD_LITERALS

    def __init__(self, labels: Iterable[str] | None = None) -> None:
        chosen = SECRET_LABELS if labels is None else tuple(labels)
        unknown = sorted(set(chosen) - set(SECRET_LABELS))
        if unknown:
            raise ValueError(f"unknown secret labels {unknown}; known: {list(SECRET_LABELS)}")
        self._labels = chosen
        self._finders = [(label, find) for label in chosen for find in _FINDERS[label]]

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        lowered = _lower_same_length(text)
        return merge_overlapping(
            Finding(self.name, SECRET, label, score, start, end)
            for label, find in self._finders
            for start, end, score in find(text, lowered)
        )

    def __repr__(self) -> str:
        return f"SecretDetector(labels={list(self._labels)})"
