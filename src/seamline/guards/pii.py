"""PII detection with spans: emails, phone numbers, payment cards, IBANs, national identifiers
and IP addresses.

Every entity is found in two steps: a precompiled pattern proposes a candidate, then a
validator keeps it or drops it (Luhn for cards, ISO 13616 mod 97 for IBANs, the national check
characters, ``ipaddress`` for addresses). The validators are what keep order ids, prices, dates
and version numbers out: a 16-digit number that fails Luhn is not a card.

National identifiers: US SSN, UK NINO, French NIR, German Steuer-ID, Spanish DNI and NIE,
Italian codice fiscale.

Scores: 1.0 where a checksum validated the value (cards, IBANs, NIR, Steuer-ID, DNI/NIE,
codice fiscale); 0.9 where the format is specific and its allocation rules were checked but no
checksum exists (email, SSN, NINO, IP address); 0.8 for phone numbers, whose only evidence is
their shape.

Performance: Python's ``re`` looks for a pattern that starts with a character class at about
10 ns a character, whatever the class, so twelve such patterns cost twelve passes. The shapes
that start with a digit, and those that start with a capital letter, are therefore each found
in one pass (a ``_Family``), and the rest start with a literal ("+", "@", "::") that ``re`` or
``str.find`` finds at C speed. Candidates start only at a word boundary and every repetition
is bounded or possessive, so a scan is linear in the input (a 1 MB message returns). Budget,
from ``bench/guard_pii.py`` on 2 shared cores: < 0.1 ms at p50 for a 2,000-character message
with no PII (dates, prices and ids in it), 0.2-0.3 ms with about ten entities in it (each one
validated: Luhn, mod 97, ``ipaddress``).

Example::

    >>> [(f.label, f.start, f.end) for f in PiiDetector().scan("mail bob@example.com")]
    [('email', 5, 20)]
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from seamline.guards.findings import PII, Finding
from seamline.guards.redact import merge_overlapping

# (start, end, score) of one validated entity.
_Hit = tuple[int, int, float]

CHECKSUM = 1.0  # a checksum or check character validated the value
VALIDATED_FORMAT = 0.9  # specific format and allocation rules, no checksum exists
SHAPE_ONLY = 0.8  # the shape is the only evidence (phone numbers)

PII_LABELS: tuple[str, ...] = (
    "email",
    "phone",
    "payment_card",
    "iban",
    "us_ssn",
    "uk_nino",
    "fr_nir",
    "de_tax_id",
    "es_dni",
    "es_nie",
    "it_fiscal_code",
    "ip_address",
)


def _is_word(text: str, index: int) -> bool:
    """Whether ``text[index]`` exists and is a letter, a digit or an underscore."""
    if 0 <= index < len(text):
        char = text[index]
        return char.isalnum() or char == "_"
    return False


# --- checksums ---------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# IBAN length per country, from the SWIFT IBAN Registry (release 99, 2024).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_CHARS = re.compile(r"[A-Z0-9]+")


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length, and mod 97 of the rearranged number is 1."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or _IBAN_CHARS.fullmatch(iban) is None:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def nir_valid(nir: str) -> bool:
    """The French NIR's key: 97 - (first 13 digits mod 97); Corsica's 2A/2B count as 19/18."""
    department = {"2A": "19", "2B": "18"}.get(nir[5:7], nir[5:7])
    number = nir[:5] + department + nir[7:13]
    return 97 - int(number) % 97 == int(nir[13:])


def steuer_id_valid(digits: str) -> bool:
    """The German Steuer-ID's allocation rule and ISO 7064 MOD 11,10 check digit.

    In the first ten digits exactly one digit appears twice or three times, never three in a
    row (the Federal Central Tax Office's allocation rule).
    """
    repeated = [count for count in Counter(digits[:10]).values() if count > 1]
    if len(repeated) != 1 or repeated[0] > 3:
        return False
    if repeated[0] == 3 and any(digits[i] == digits[i + 1] == digits[i + 2] for i in range(8)):
        return False
    product = 10
    for char in digits[:10]:
        total = (int(char) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10 == int(digits[10])


# Spanish DNI (8 digits) and NIE (X, Y or Z and 7 digits) end with a check letter: the number
# (X=0, Y=1, Z=2) mod 23 indexes this table (Real Decreto 1553/2005).
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_letter_valid(number: str, letter: str) -> bool:
    """Whether ``letter`` is the check letter of a DNI number or an NIE (with its X/Y/Z)."""
    if number[0] in "XYZ":
        number = str("XYZ".index(number[0])) + number[1:]
    return _DNI_LETTERS[int(number) % 23] == letter


# Codice fiscale (DM 23/12/1976): values of characters in odd (1st, 3rd...) positions; a digit
# counts as the letter at its index (0 as A, 1 as B...). Even positions count 0-25 (A-Z, 0-9).
_CF_ODD = (
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
)  # fmt: skip


def fiscal_code_valid(code: str) -> bool:
    """The Italian codice fiscale's check character over its first 15 characters."""
    total = 0
    for position, char in enumerate(code[:15]):
        index = int(char) if char.isdigit() else ord(char) - 65
        total += _CF_ODD[index] if position % 2 == 0 else index
    return chr(65 + total % 26) == code[15]


# --- validators: a candidate match in, a hit or None out ---------------------------------------

_Validator = Callable[[str, re.Match[str]], _Hit | None]

# US SSN: SSA never issues area 000, 666 or 900-999, group 00 or serial 0000; 078-05-1120 and
# 219-09-9999 were printed in advertising and are void.
_VOID_SSNS = frozenset({"078-05-1120", "219-09-9999"})


def _ssn(text: str, match: re.Match[str]) -> _Hit | None:
    area, group, serial = match[0].split("-")
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return None if match[0] in _VOID_SSNS else (match.start(), match.end(), VALIDATED_FORMAT)


# "version 10.0.0.1" is a version number, not an address.
_VERSION_BEFORE = re.compile(r"(?:version|release|build|ver|v)\s*$", re.IGNORECASE)


def _personal_ip(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    # Loopback and unspecified addresses (127.0.0.1, 0.0.0.0, ::1, ::) identify nobody.
    return not (address.is_loopback or address.is_unspecified)


def _ipv4(text: str, match: re.Match[str]) -> _Hit | None:
    if _VERSION_BEFORE.search(text, max(0, match.start() - 12), match.start()):
        return None
    return (match.start(), match.end(), VALIDATED_FORMAT) if _personal_ip(match[0]) else None


_CARD_SEPARATOR = re.compile(r"[ \-]")
# Issuer identification number ranges and the lengths each network issues (ISO/IEC 7812 and
# the networks' published ranges): (lowest prefix, highest prefix, lengths).
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("6011", "6011", frozenset(range(16, 20))),  # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("300", "305", frozenset(range(14, 20))),  # Diners Club
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(16, 20))),
    ("3528", "3589", frozenset(range(16, 20))),  # JCB
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("50", "50", frozenset(range(13, 20))),  # Maestro
    ("56", "58", frozenset(range(13, 20))),
    ("6304", "6304", frozenset(range(13, 20))),
    ("6759", "6759", frozenset(range(13, 20))),
)


def _known_issuer(digits: str) -> bool:
    return any(
        low <= digits[: len(low)] <= high and len(digits) in lengths
        for low, high, lengths in _CARD_RANGES
    )


def _card(text: str, match: re.Match[str]) -> _Hit | None:
    groups = _CARD_SEPARATOR.split(match[0])
    # A card followed by more digits ("4111 1111 1111 1111 123", the CVV) is found by
    # dropping trailing groups, longest first.
    for count in range(len(groups), 0, -1):
        digits = "".join(groups[:count])
        if len(digits) < 13:
            break
        if _known_issuer(digits) and luhn_valid(digits):
            return match.start(), match.start() + len(digits) + count - 1, CHECKSUM
    return None


def _nir(text: str, match: re.Match[str]) -> _Hit | None:
    valid = nir_valid(match[0].replace(" ", ""))
    return (match.start(), match.end(), CHECKSUM) if valid else None


def _de_tax_id(text: str, match: re.Match[str]) -> _Hit | None:
    # Written as one run of 11 digits or as 12 345 678 901.
    valid = match[0].count(" ") in (0, 3) and steuer_id_valid(match[0].replace(" ", ""))
    return (match.start(), match.end(), CHECKSUM) if valid else None


def _spanish_id(text: str, match: re.Match[str]) -> _Hit | None:
    compact = match[0].replace(" ", "").replace("-", "")
    valid = dni_letter_valid(compact[:-1], compact[-1])
    return (match.start(), match.end(), CHECKSUM) if valid else None


def _iban(text: str, match: re.Match[str]) -> _Hit | None:
    """The IBAN starting at the match (its country code and check digits), if valid.

    The country fixes the length, so the rest is read, not matched: the electronic form (no
    spaces), else the print form (groups of four joined by single spaces).
    """
    start = match.start()
    length = IBAN_LENGTHS.get(match[0][:2])
    if length is None:
        return None
    for end in (start + length, start + length + (length - 1) // 4):
        groups = text[start:end].split(" ")
        if len(groups) > 1 and any(len(group) != 4 for group in groups[:-1]):
            continue
        if not _is_word(text, end) and iban_valid("".join(groups)):
            return start, end, CHECKSUM
    return None


# UK NINO: these prefix pairs are never allocated (HMRC NIM39110).
_NINO_UNALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _nino(text: str, match: re.Match[str]) -> _Hit | None:
    allocated = match[0][:2] not in _NINO_UNALLOCATED
    return (match.start(), match.end(), VALIDATED_FORMAT) if allocated else None


def _fiscal_code(text: str, match: re.Match[str]) -> _Hit | None:
    valid = fiscal_code_valid(match[0])
    return (match.start(), match.end(), CHECKSUM) if valid else None


_PHONE_SEPARATORS = " .-/("


def _phone(low: int, high: int) -> _Validator:
    """A phone number with ``low`` to ``high`` digits.

    A greedy pattern may swallow a number that follows the phone number ("call +44 20 7946
    0958 2024"): whole trailing groups are dropped until the count fits.
    """

    def validate(text: str, match: re.Match[str]) -> _Hit | None:
        candidate, end = match[0], len(match[0])
        while end > 0:
            count = sum(char.isdigit() for char in candidate[:end])
            if count <= high:
                if count < low or _is_word(text, match.start() + end):
                    return None
                return match.start(), match.start() + end, SHAPE_ONLY
            end = max(candidate.rfind(separator, 0, end) for separator in _PHONE_SEPARATORS)
        return None

    return validate


# --- shapes and families -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """One entity's pattern, split into its first character's class and the rest.

    ``rest`` carries the entity's own boundary checks (a lookbehind right after the first
    character, a lookahead at the end).
    """

    label: str
    first: str
    rest: str
    validate: _Validator


class _Family:
    """Shapes whose first characters share one class, found in a single pass.

    One regex joins the shapes behind the shared class and stops where any of them matches;
    the alternation tells which matched first, and from that one on, in order, each shape's
    own pattern and validator run until one accepts. A candidate one validator rejects is thus
    still seen by the later shapes, which is why the order is by certainty: checksums first.
    """

    def __init__(
        self,
        first: str,
        ahead: str,
        shapes: tuple[_Shape, ...],
        worth_scanning: Callable[[str], bool] = bool,
    ) -> None:
        self.labels = frozenset(shape.label for shape in shapes)
        # A C-speed test that the text could hold one of the shapes at all.
        self.worth_scanning = worth_scanning
        self._shapes = tuple((shape, re.compile(shape.first + shape.rest)) for shape in shapes)
        branches = "|".join(
            f"(?P<s{index}>(?<={shape.first}){shape.rest})" for index, shape in enumerate(shapes)
        )
        # ``ahead``: what every shape has after its first character, checked once before the
        # shapes are tried (most numbers and capitalised words fail it at once).
        self._any = re.compile(rf"{first}(?<!\w{first})(?={ahead})(?:{branches})")

    def find(self, text: str, labels: frozenset[str]) -> Iterator[tuple[str, _Hit]]:
        position = 0
        while (candidate := self._any.search(text, position)) is not None:
            start = candidate.start()
            # The branch that matched (its group closes last); the ones before it did not.
            earliest = int((candidate.lastgroup or "s0")[1:])
            for shape, pattern in self._shapes[earliest:]:
                if shape.label in labels and (match := pattern.match(text, start)) is not None:
                    hit = shape.validate(text, match)
                    if hit is not None:
                        yield shape.label, hit
                        break
            position = start + 1


def _has_four_digits(text: str) -> bool:
    # The fewest digits any digit-led shape has: an IPv4 address (1.2.3.4). Ten str.count calls
    # cost about a microsecond for 2,000 characters; the family's pass costs 50 or more.
    return sum(map(text.count, "0123456789")) >= 4


_DIGIT_LED = _Family(
    r"[0-9(]",
    r"[0-9 .\-/()]{5}",
    (
        # 13-19 digits, plain or printed the way cards are (fours, 4-6-5 or 4-6-4, joined by
        # one kind of separator); a decimal, a longer number or an international phone number
        # is not a card (no ".", "," or "+" before, no digit after). Nothing in this family
        # starts right after a "+".
        _Shape(
            "payment_card",
            "[0-9]",
            r"(?<![\w+.,][0-9])(?:[0-9]{12,18}|[0-9]{3}(?P<card>[ \-])"
            r"(?:[0-9]{4}(?P=card)[0-9]{4}(?P=card)(?:[0-9]{4}(?P=card)[0-9]{1,3}|[0-9]{1,4})"
            r"|[0-9]{6}(?P=card)[0-9]{4,5}))(?![0-9])",
            _card,
        ),
        # French NIR: sex, year, month, department (2A/2B for Corsica), commune, order, key.
        _Shape(
            "fr_nir",
            "[1-478]",
            r"(?<![\w+][1-478]) ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB])"
            r" ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}(?!\w)",
            _nir,
        ),
        # German Steuer-ID: 11 digits, no leading 0.
        _Shape("de_tax_id", "[1-9]", r"(?<![\w+][1-9])[0-9](?: ?[0-9]{3}){3}(?!\w)", _de_tax_id),
        _Shape("es_dni", "[0-9]", r"(?<![\w+][0-9])[0-9]{7}[ \-]?[A-Z](?!\w)", _spanish_id),
        # US SSN, written 3-2-4 with dashes.
        _Shape("us_ssn", "[0-9]", r"(?<![\w+\-][0-9])[0-9]{2}-[0-9]{2}-[0-9]{4}(?![\w\-])", _ssn),
        _Shape(
            "ip_address",
            "[0-9]",
            r"(?<![\w+.][0-9])[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?!\w|\.[0-9])",
            _ipv4,
        ),
        # North American Numbering Plan: area code and exchange start with 2-9, one separator
        # style; optionally behind the country code 1.
        _Shape(
            "phone",
            "[2-9]",
            r"(?<![\w+][2-9])[0-9]{2}(?P<nanp>[ .\-])[2-9][0-9]{2}(?P=nanp)[0-9]{4}(?!\w)",
            _phone(10, 10),
        ),
        _Shape(
            "phone",
            r"\(",
            r"(?<![\w+]\()[2-9][0-9]{2}\) ?[2-9][0-9]{2}[ .\-][0-9]{4}(?!\w)",
            _phone(10, 10),
        ),
        _Shape(
            "phone",
            "1",
            r"(?<![\w+]1)[ .\-](?:\([2-9][0-9]{2}\) ?[2-9][0-9]{2}[ .\-]"
            r"|[2-9][0-9]{2}(?P<nanp1>[ .\-])[2-9][0-9]{2}(?P=nanp1))[0-9]{4}(?!\w)",
            _phone(11, 11),
        ),
        # National numbers behind a trunk prefix 0 (UK, France, Germany, Italy, the
        # Netherlands...): at least two groups joined by one separator, 10-12 digits with the
        # 0 (France and the Netherlands 10, UK 10-11, Germany up to 12), so dates (01.02.2024:
        # eight digits), SSN-shaped numbers (nine) and plain numbers stay out; shorter German
        # and Italian landline numbers are missed. Not right after "-", "." or "/": that is
        # the middle of a date or an id.
        _Shape(
            "phone",
            "0",
            r"(?<![\w+\-./]0)[1-9][0-9]{0,4}+(?P<trunk>[ .\-/])[0-9]{2,8}+"
            r"(?:(?P=trunk)[0-9]{2,8}+){0,5}+",
            _phone(10, 12),
        ),
    ),
    _has_four_digits,
)

_CAPITAL_LED = _Family(
    "[A-Z]",
    r"[A-Z0-9 \-]{3}",
    (
        # An IBAN's country code and check digits; the validator reads the rest.
        _Shape("iban", "[A-Z]", r"(?<!\w[A-Z])[A-Z][0-9]{2}", _iban),
        # Codice fiscale: surname, name, year, month letter, day, place, check character;
        # digits may be replaced by LMNPQRSTUV when two people would share a code.
        _Shape(
            "it_fiscal_code",
            "[A-Z]",
            r"(?<!\w[A-Z])[A-Z]{5}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z]"
            r"[0-9LMNPQRSTUV]{3}[A-Z](?!\w)",
            _fiscal_code,
        ),
        _Shape("es_nie", "[XYZ]", r"(?<!\w[XYZ])[ \-]?[0-9]{7}[ \-]?[A-Z](?!\w)", _spanish_id),
        # UK NINO: two prefix letters, six digits, suffix A-D. The first letter is never D, F,
        # I, Q, U or V, the second never D, F, I, O, Q, U or V, so QQ 12 34 56 C, HMRC's own
        # example, is not one.
        _Shape(
            "uk_nino",
            "[A-CEGHJ-PR-TW-Z]",
            r"(?<!\w[A-Z])[A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?!\w)",
            _nino,
        ),
    ),
)


# --- the literal-led entities ------------------------------------------------------------------

# RFC 5321 allows 64 characters before the "@"; the local part is read leftwards from each "@"
# (found with str.find), so text without "@" costs one C-level search.
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_EMAIL_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)


def _emails(text: str) -> Iterator[_Hit]:
    at = text.find("@")
    while at != -1:
        start = at
        while start > max(0, at - 64) and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        while start < at and text[start] == ".":  # a sentence's full stop, not the address
            start += 1
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if start < at and domain is not None:
            yield start, domain.end(), VALIDATED_FORMAT
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)


# International phone numbers: "+", a country code, then groups with single separators.
# Possessive digit runs leave one way to split the text, so no backtracking; at most 8 groups.
# E.164 allows 15 digits with the country code; the shortest plans have 8.
_INTL_PHONE = re.compile(
    r"\+(?<![\w+]\+)[1-9][0-9]{0,14}+(?:[ .\-]?+(?:\([0-9]{1,4}\)|[0-9]{1,15}+)){0,8}+"
)
_intl_phone = _phone(8, 15)


def _intl_phones(text: str) -> Iterator[_Hit]:
    if "+" not in text:
        return
    for match in _INTL_PHONE.finditer(text):
        if (hit := _intl_phone(text, match)) is not None:
            yield hit


# IPv6: found from its colons (a literal, fast to search for), then read back over the hex
# digits of the first group; two colons at least (a time such as 12:30 has one), and
# ipaddress decides.
_IPV6_COLONS = re.compile(r":[0-9A-Fa-f]{0,4}+:")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}+")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _ipv6s(text: str) -> Iterator[_Hit]:
    # An address has "::" or seven colons; most text has neither, and then costs nothing here.
    if "::" not in text and text.count(":") < 7:
        return
    position = 0
    while (colons := _IPV6_COLONS.search(text, position)) is not None:
        start = colons.start()
        while start > max(0, colons.start() - 4) and text[start - 1] in _HEX_DIGITS:
            start -= 1
        match = _IPV6.match(text, start)
        assert match is not None  # the colons themselves match
        position = match.end()
        candidate = match[0].rstrip(".")
        if _is_word(text, start - 1) or text[start - 1 : start] in (":", "."):
            continue
        if not _is_word(text, start + len(candidate)) and _personal_ip(candidate):
            yield start, start + len(candidate), VALIDATED_FORMAT


_LITERAL_LED: tuple[tuple[str, Callable[[str], Iterator[_Hit]]], ...] = (
    ("email", _emails),
    ("phone", _intl_phones),
    ("ip_address", _ipv6s),
)


# --- the detector ------------------------------------------------------------------------------


class PiiDetector:
    """Finds personal data with spans, one finding per entity, labelled by entity type.

    ``labels`` restricts the scan to some of ``PII_LABELS`` (a policy may not want IP
    addresses, say); an unknown label raises ``ValueError``. Where two entities overlap (a
    phone-shaped run inside an IBAN), one finding covers both and carries the more certain
    label. ``untrusted`` changes nothing: a card number is a card number wherever it came from.
    """

    name = "pii"
    finds_only_loud_text = True  # every entity holds a digit or "@" (``stream_scan``)

    def __init__(self, labels: Iterable[str] | None = None) -> None:
        chosen = frozenset(PII_LABELS if labels is None else labels)
        unknown = sorted(chosen - set(PII_LABELS))
        if unknown:
            raise ValueError(f"unknown PII labels {unknown}; known: {list(PII_LABELS)}")
        self._labels = chosen
        self._literal_led = [(label, find) for label, find in _LITERAL_LED if label in chosen]
        self._families = [f for f in (_DIGIT_LED, _CAPITAL_LED) if f.labels & chosen]

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        hits = [(label, hit) for label, find in self._literal_led for hit in find(text)]
        for family in self._families:
            if family.worth_scanning(text):
                hits.extend(family.find(text, self._labels))
        return merge_overlapping(
            Finding(self.name, PII, label, score, start, end) for label, (start, end, score) in hits
        )

    def __repr__(self) -> str:
        return f"PiiDetector(labels={sorted(self._labels)})"
