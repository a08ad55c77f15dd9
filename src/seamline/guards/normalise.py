r"""Text as a detector should see it: one normalised form, and the payloads hidden inside it.

Attackers hide instructions from pattern matching in ways a model still reads through:
look-alike letters from other scripts (a Cyrillic "o" for the Latin one), fullwidth and
mathematical letters, zero-width and bidi characters inside words, diacritics stacked on letters
("zalgo"), and encodings a model can decode when asked (base64, hex, percent-encoding,
rot13), or invisible characters that spell text (Unicode tag characters, emoji variation
selectors). :func:`views` returns the normalised text plus one view per decoded payload, so
a detector matches every form with the same patterns.

>>> [(v.kind, v.text) for v in views("ign\u200bore  \uff50revious")]
[('normalised', 'ignore previous'), ('rot13', 'vtaber cerivbhf')]

Bounded on hostile input: every pattern is linear (possessive or bounded repetitions), at
most :data:`MAX_CANDIDATES` runs of each encoding are tried and :data:`MAX_PAYLOADS` kept, and
the decoded payloads share :data:`MAX_DECODED_CHARS`. What a bound cut off is reported, not
dropped silently: the kind gets a view with ``truncated=True``, so a policy can treat
content it could not inspect as its ``on_error`` says. The whole-text views (normalised,
url, rot13) are never cut: each is no longer than the input, so a payload cannot be pushed
out of reach by padding.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Decoded payloads (tags, selectors, base64, hex) share this many characters per call: far
# more than any instruction needs, small next to the 1 MB a hostile message may carry.
MAX_DECODED_CHARS = 64 * 1024
# Per encoding: payloads kept, and runs tried (most runs in ordinary text are identifiers or
# hashes that decode to binary; trying them costs time, so their number is bounded too).
MAX_PAYLOADS = 16
MAX_CANDIDATES = 64
# A decoded payload is kept when this share of its characters is printable: text, not the
# bytes of a hash or a compressed file that happened to match the alphabet.
MIN_PRINTABLE = 0.9


@dataclass(frozen=True)
class View:
    """One form of a text for detectors to match.

    ``kind``: "normalised" (always first), "tags", "selectors", "base64", "hex" (one view per
    decoded payload), "url" or "rot13" (the whole text decoded). ``truncated``: a bound cut
    this view short or left payloads of this kind undecoded (the view may then be empty).
    """

    kind: str
    text: str
    truncated: bool = False


# --- normalisation ----------------------------------------------------------------------

# Deleted: characters that render as nothing (or only steer rendering) yet split a word for a
# pattern. Zero-width spaces and joiners, word joiner and invisible operators, BOM, soft
# hyphen, bidi embeddings/overrides/isolates (Trojan Source, CVE-2021-42574), Mongolian vowel
# separator, Arabic letter mark, Hangul fillers (render blank), tag characters (decoded
# separately) and variation selectors (likewise).
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x2069),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xE0000, 0xE007F),
    (0xE0100, 0xE01EF),
)
# Deleted: control characters other than the whitespace ones (tab and line breaks are kept
# for the whitespace collapse), and lone surrogates (a str decoded with surrogateescape).
_CONTROL_RANGES = ((0x00, 0x08), (0x0E, 0x1F), (0x7F, 0x84), (0x86, 0x9F), (0xD800, 0xDFFF))
# Deleted, also from precomposed letters: the generic combining diacritics, so "ïgnörë" and
# stacked zalgo marks read as "ignore", and the French, German and Spanish rules need no
# accents. Script-specific marks (Devanagari vowel signs, kana voicing) are other blocks and
# stay. The BERT-style uncased tokenisers a learned detector uses strip accents the same way.
_DIACRITIC_RANGES = (
    (0x0300, 0x036F),
    (0x0483, 0x0489),  # Cyrillic combining marks: zalgo generators use them too
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
)
# Look-alikes NFKC leaves alone, mapped to the Latin letter they imitate. A small table of
# our own, not a package: the well-kept PyPI tables (confusable-homoglyphs 3.3.1, 0.9 MB of
# JSON; confusables 1.2.0, 2.7 MB, last release 2021) are Unicode's whole TR39 list, built for
# detecting a spoof rather than folding text; their skeletons also fold Latin into Latin
# ("rn" -> "m", "0" -> "O"), which would make ordinary text match what it does not say. These
# are the letters whose glyphs are indistinguishable from Latin in common fonts (TR39
# confusables.txt, Cyrillic, Greek, Armenian and Latin small capitals / IPA); accented forms
# of them reduce to these after decomposition.
_LOOKALIKES = {
    "a": (
        "\N{CYRILLIC SMALL LETTER A}"
        "\N{GREEK SMALL LETTER ALPHA}"
        "\N{LATIN SMALL LETTER ALPHA}"
        "\N{LATIN LETTER SMALL CAPITAL A}"
    ),
    "A": ("\N{CYRILLIC CAPITAL LETTER A}\N{GREEK CAPITAL LETTER ALPHA}"),
    "b": ("\N{CYRILLIC SMALL LETTER VE}\N{LATIN LETTER SMALL CAPITAL B}"),
    "B": ("\N{CYRILLIC CAPITAL LETTER VE}\N{GREEK CAPITAL LETTER BETA}"),
    "c": (
        "\N{CYRILLIC SMALL LETTER ES}\N{GREEK LUNATE SIGMA SYMBOL}\N{LATIN LETTER SMALL CAPITAL C}"
    ),
    "C": ("\N{CYRILLIC CAPITAL LETTER ES}\N{GREEK CAPITAL LUNATE SIGMA SYMBOL}"),
    "d": ("\N{CYRILLIC SMALL LETTER KOMI DE}\N{LATIN LETTER SMALL CAPITAL D}"),
    "e": (
        "\N{CYRILLIC SMALL LETTER IE}\N{GREEK SMALL LETTER EPSILON}\N{LATIN LETTER SMALL CAPITAL E}"
    ),
    "E": ("\N{CYRILLIC CAPITAL LETTER IE}\N{GREEK CAPITAL LETTER EPSILON}"),
    "g": ("\N{LATIN SMALL LETTER SCRIPT G}\N{LATIN LETTER SMALL CAPITAL G}"),
    "h": (
        "\N{CYRILLIC SMALL LETTER SHHA}"
        "\N{CYRILLIC SMALL LETTER EN}"
        "\N{ARMENIAN SMALL LETTER HO}"
        "\N{LATIN LETTER SMALL CAPITAL H}"
    ),
    "H": ("\N{CYRILLIC CAPITAL LETTER EN}\N{GREEK CAPITAL LETTER ETA}"),
    "i": (
        "\N{CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I}"
        "\N{GREEK SMALL LETTER IOTA}"
        "\N{LATIN SMALL LETTER DOTLESS I}"
        "\N{LATIN LETTER SMALL CAPITAL I}"
    ),
    "I": (
        "\N{CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I}"
        "\N{CYRILLIC LETTER PALOCHKA}"
        "\N{GREEK CAPITAL LETTER IOTA}"
    ),
    "j": (
        "\N{CYRILLIC SMALL LETTER JE}"
        "\N{GREEK LETTER YOT}"
        "\N{LATIN SMALL LETTER DOTLESS J}"
        "\N{LATIN LETTER SMALL CAPITAL J}"
    ),
    "J": ("\N{CYRILLIC CAPITAL LETTER JE}"),
    "k": (
        "\N{CYRILLIC SMALL LETTER KA}\N{GREEK SMALL LETTER KAPPA}\N{LATIN LETTER SMALL CAPITAL K}"
    ),
    "K": ("\N{CYRILLIC CAPITAL LETTER KA}\N{GREEK CAPITAL LETTER KAPPA}"),
    "l": ("\N{CYRILLIC SMALL LETTER PALOCHKA}\N{LATIN LETTER SMALL CAPITAL L}"),
    "m": ("\N{CYRILLIC SMALL LETTER EM}\N{LATIN LETTER SMALL CAPITAL M}"),
    "M": ("\N{CYRILLIC CAPITAL LETTER EM}\N{GREEK CAPITAL LETTER MU}"),
    "n": ("\N{ARMENIAN SMALL LETTER VO}\N{LATIN LETTER SMALL CAPITAL N}"),
    "N": ("\N{GREEK CAPITAL LETTER NU}"),
    "o": (
        "\N{CYRILLIC SMALL LETTER O}"
        "\N{GREEK SMALL LETTER OMICRON}"
        "\N{ARMENIAN SMALL LETTER OH}"
        "\N{LATIN LETTER SMALL CAPITAL O}"
    ),
    "O": ("\N{CYRILLIC CAPITAL LETTER O}\N{GREEK CAPITAL LETTER OMICRON}"),
    "p": ("\N{CYRILLIC SMALL LETTER ER}\N{GREEK SMALL LETTER RHO}\N{LATIN LETTER SMALL CAPITAL P}"),
    "P": ("\N{CYRILLIC CAPITAL LETTER ER}\N{GREEK CAPITAL LETTER RHO}"),
    "q": ("\N{CYRILLIC SMALL LETTER QA}"),
    "Q": ("\N{CYRILLIC CAPITAL LETTER QA}"),
    "r": ("\N{LATIN LETTER SMALL CAPITAL R}"),
    "s": ("\N{CYRILLIC SMALL LETTER DZE}\N{LATIN LETTER SMALL CAPITAL S}"),
    "S": ("\N{CYRILLIC CAPITAL LETTER DZE}"),
    "t": ("\N{CYRILLIC SMALL LETTER TE}\N{GREEK SMALL LETTER TAU}\N{LATIN LETTER SMALL CAPITAL T}"),
    "T": ("\N{CYRILLIC CAPITAL LETTER TE}\N{GREEK CAPITAL LETTER TAU}"),
    "u": (
        "\N{GREEK SMALL LETTER UPSILON}"
        "\N{ARMENIAN SMALL LETTER SEH}"
        "\N{LATIN LETTER SMALL CAPITAL U}"
    ),
    "v": ("\N{GREEK SMALL LETTER NU}\N{LATIN LETTER SMALL CAPITAL V}"),
    "w": (
        "\N{CYRILLIC SMALL LETTER WE}\N{GREEK SMALL LETTER OMEGA}\N{LATIN LETTER SMALL CAPITAL W}"
    ),
    "W": ("\N{CYRILLIC CAPITAL LETTER WE}"),
    "x": ("\N{CYRILLIC SMALL LETTER HA}\N{GREEK SMALL LETTER CHI}"),
    "X": ("\N{CYRILLIC CAPITAL LETTER HA}\N{GREEK CAPITAL LETTER CHI}"),
    "y": (
        "\N{CYRILLIC SMALL LETTER U}"
        "\N{CYRILLIC SMALL LETTER STRAIGHT U}"
        "\N{LATIN LETTER SMALL CAPITAL Y}"
    ),
    "Y": (
        "\N{CYRILLIC CAPITAL LETTER U}"
        "\N{CYRILLIC CAPITAL LETTER STRAIGHT U}"
        "\N{GREEK CAPITAL LETTER UPSILON}"
    ),
    "z": ("\N{LATIN LETTER SMALL CAPITAL Z}"),
    "Z": ("\N{GREEK CAPITAL LETTER ZETA}"),
}


def _stripped(char: str) -> str:
    """``char`` without its generic diacritics, look-alikes mapped: "é" -> "e", "ї" -> "i"."""
    base = "".join(
        c
        for c in unicodedata.normalize("NFD", char)
        if not any(first <= ord(c) <= last for first, last in _DIACRITIC_RANGES)
    )
    return "".join(_LATIN_OF.get(c, c) for c in base)


_LATIN_OF = {char: latin for latin, chars in _LOOKALIKES.items() for char in chars}
# Every BMP character normalise changes, and what it becomes ("" for deleted): the deleted
# ranges, the look-alikes, and the accented letters of the Latin, Greek and Cyrillic blocks
# (precomposed, as NFKC leaves them).
_DELETED = [
    chr(code)
    for first, last in (*_INVISIBLE_RANGES, *_CONTROL_RANGES, *_DIACRITIC_RANGES)
    if last <= 0xFFFF
    for code in range(first, last + 1)
]
_ACCENTED_RANGES = ((0x00C0, 0x024F), (0x0370, 0x04FF), (0x1E00, 0x1FFF))
_CHANGES: dict[str, str] = {char: "" for char in _DELETED} | _LATIN_OF
_CHANGES |= {
    char: folded
    for first, last in _ACCENTED_RANGES
    for char in map(chr, range(first, last + 1))
    if (folded := _stripped(char)) and folded != char
}
_CHANGED = re.compile("[" + "".join(re.escape(char) for char in _CHANGES) + "]")
# Beyond the BMP only tag characters and the supplementary variation selectors are deleted.
# A class holding astral code points is checked range by range, slower than the BMP's
# bitmap, so they get a pass of their own.
_ASTRAL_DELETED = re.compile("[\U000e0000-\U000e007f\U000e0100-\U000e01ef]+")
# str.translate costs a dict lookup a character, and a miss a raised KeyError: the scripts
# the changed characters come from (and ASCII and punctuation) map to themselves, so a text
# that needs it costs one hit a character.
_IDENTITY_RANGES = ((0x0000, 0x058F), (0x1D00, 0x1FFF), (0x2000, 0x206F), (0xA720, 0xA7FF))
_FOLD: dict[int, str | None] = {
    code: chr(code) for first, last in _IDENTITY_RANGES for code in range(first, last + 1)
}
_FOLD |= {ord(char): (folded or None) for char, folded in _CHANGES.items()}
# Fixing changed characters one match at a time costs a callback each (about eight dict
# lookups' worth), translating the whole text a dict lookup a character: French, an accent
# every few words, is cheaper by match; Russian or Greek, nearly every letter a look-alike,
# by translation. The share in the first 256 characters decides (a text that misleads it
# costs a few times more, still linear).
_DENSITY_SAMPLE = 256
_DENSE_SHARE = 8  # one changed character in this many
_ASCII_CONTROLS = str.maketrans(dict.fromkeys([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F]))
# Whitespace that _collapse would change in a text without leading or trailing whitespace
# (NFKC has already made the other Unicode spaces U+0020).
_LOOSE = (
    "  ", "\t", "\r", "\x0b", "\x0c", "\n\n", " \n", "\n ", "\x85", "\u1680", "\u2028", "\u2029",
)  # fmt: skip
_BELOW_ASTRAL = bytes(range(0xF0))


def _changed(match: re.Match[str]) -> str:
    return _CHANGES[match.group()]


def _has_astral(text: str) -> bool:
    """Whether ``text`` has a code point above the BMP (an emoji, a tag character).

    C-speed: UTF-8 starts exactly those with a byte of 0xF0 or more. A regex class of astral
    ranges is checked range by range, many times slower.
    """
    return bool(text.encode("utf-8", "surrogatepass").translate(None, _BELOW_ASTRAL))


def normalise(text: str) -> str:
    """``text`` folded for matching: NFKC, invisible and control characters deleted, generic
    diacritics deleted, look-alike letters mapped to Latin, each run of spaces one space and
    each run of line breaks (with blank lines) one line break.

    Line breaks are kept because where a line starts matters (a fake ``System:`` turn).
    Case is kept: detectors match case-insensitively where case does not matter.
    """
    if text.isascii():  # the common case: NFKC and the tables change nothing in ASCII
        text = text.translate(_ASCII_CONTROLS)
    else:
        # NFKC composes what was decomposed, so an accent typed as a combining mark is
        # folded like a precomposed one; marks with no precomposed form (zalgo) are deleted.
        text = unicodedata.normalize("NFKC", text)
        if _has_astral(text):
            text = _ASTRAL_DELETED.sub("", text)
        sample = len(_CHANGED.findall(text, 0, _DENSITY_SAMPLE))
        if sample * _DENSE_SHARE > min(len(text), _DENSITY_SAMPLE):
            text = text.translate(_FOLD)
        else:
            text = _CHANGED.sub(_changed, text)
    text = text.strip()
    return _collapse(text) if any(gap in text for gap in _LOOSE) else text


def _collapse(text: str) -> str:
    # str.split and str.splitlines are C loops over Unicode's own whitespace and line-break
    # sets (NEL, U+2028 and the other separators included): linear, no regex.
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


# --- decoded views ----------------------------------------------------------------------


class _Budget:
    """Decoded characters left for this call."""

    def __init__(self, chars: int) -> None:
        self.chars = chars

    def take(self, text: str) -> tuple[str, bool]:
        """``text`` cut to what is left, and whether it was cut."""
        kept = text[: self.chars]
        self.chars -= len(kept)
        return kept, len(kept) < len(text)


def _printable(text: str) -> bool:
    if not text:
        return False
    printable = sum(map(str.isprintable, text)) + text.count("\n") + text.count("\t")
    return printable >= MIN_PRINTABLE * len(text)


def _text_of(data: bytes | None) -> str | None:
    """``data`` as text when it is valid, mostly printable UTF-8, else None. Random bytes
    (a hash, an identifier that fits the alphabet) are almost never valid UTF-8; only an
    incomplete last character is forgiven, as a run cut at a bound may end inside one."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data":
            return None
        text = data[: error.start].decode("utf-8")
    return text if _printable(text) else None


# Tag characters U+E0020-U+E007E mirror printable ASCII; they render as nothing, and some
# models read them (the "ASCII smuggling" channel). U+E0001 and U+E007F (language tag,
# cancel tag) carry no letter.
_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
# Variation selectors: VS1-VS16 and VS17-VS256 can carry one byte each after any character,
# invisibly (emoji "smuggling"). An emoji's own selector is a single one (U+FE0F), so only
# runs of four or more are decoded.
_SELECTOR_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{4,}")
# Base64 (standard or URL-safe alphabet) runs of at least 16 characters. MIME and PEM wrap
# base64 at 64 or 76 characters a line, so a run that fills its line to a multiple of four
# characters continues on the next (joined in _base64_groups).
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}+={0,2}+")
# Hex: at least 8 bytes, as contiguous digits ("69676e6f7265...") or escapes ("\\x69\\x67...").
# An odd-length run loses its last digit: shifted by half a byte only if the stray digit
# came first, and then it decodes to binary and is dropped.
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}+|\\x[0-9A-Fa-f]{2}(?:\\x[0-9A-Fa-f]{2}){7,}+")
# The precondition for both: a run of 16 characters of their alphabets (hex escapes
# included), found by masking them to "a" (a translation on CPython's fast ASCII path) and
# one substring search.
_RUN_MASK = str.maketrans(
    {
        chr(code): "a" if re.fullmatch(r"[A-Za-z0-9+/_=\\-]", chr(code)) else " "
        for code in range(128)
    }
)
_LONG_RUN = "a" * 16
# A run longer than this would decode to more than the whole budget: it is cut first, so
# one huge run costs no more than the budget.
_MAX_RUN = 4 * MAX_DECODED_CHARS


def _tag_text(run: str) -> str | None:
    text = "".join(chr(ord(c) - 0xE0000) for c in run if "\U000e0020" <= c <= "\U000e007e")
    return text if text.strip() else None


def _selector_text(run: str) -> str | None:
    return _text_of(bytes(ord(c) - 0xFE00 if c <= "\ufe0f" else ord(c) - 0xE0100 + 16 for c in run))


def _hex_text(run: str) -> str | None:
    digits = run.replace("\\x", "")
    try:
        return _text_of(bytes.fromhex(digits[: len(digits) - len(digits) % 2]))
    except ValueError:  # a run cut at _MAX_RUN inside an escape
        return None


def _base64_text(run: str) -> str | None:
    body = run.rstrip("=")
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None  # two alphabets in one run: not base64
    body = body[: len(body) - 1] if len(body) % 4 == 1 else body
    try:
        data = base64.b64decode(
            body + "=" * (-len(body) % 4), altchars=b"-_" if urlsafe else None, validate=True
        )
    except binascii.Error:
        return None
    return _text_of(data)


def _base64_groups(text: str) -> Iterator[list[str]]:
    """Base64 runs, the lines of a wrapped block as one group."""
    group: list[str] = []
    previous_end = -2
    for run in _BASE64_RUN.finditer(text):
        last = group[-1] if group else ""
        wrapped = (
            run.start() == previous_end + 1
            and text[previous_end] == "\n"
            and len(last) % 4 == 0
            and not last.endswith("=")
        )
        if group and not wrapped:
            yield group
            group = []
        group.append(run.group())
        previous_end = run.end()
    if group:
        yield group


def _base64(text: str) -> tuple[list[str], bool]:
    payloads: list[str] = []
    tries = 0
    exhausted = False
    for group in _base64_groups(text):
        # A wrapped block that does not decode whole may be followed by a line of ordinary
        # text that fits the alphabet: then it is tried without its last line, then line by
        # line.
        parts = ["".join(group), "".join(group[:-1]), *group] if len(group) > 1 else group
        for part in parts:
            if tries == MAX_CANDIDATES or len(payloads) == MAX_PAYLOADS:
                return payloads, True
            tries += 1
            decoded = _base64_text(part[:_MAX_RUN])
            if decoded is not None:
                payloads.append(decoded)
                exhausted |= len(part) > _MAX_RUN
                break
    return payloads, exhausted


def _decode_runs(
    pattern: re.Pattern[str], decode: Callable[[str], str | None], text: str
) -> tuple[list[str], bool]:
    """What the first runs of ``pattern`` decode to; and whether a bound stopped the search
    or cut a run."""
    payloads: list[str] = []
    exhausted = False
    for tries, match in enumerate(pattern.finditer(text)):
        if tries == MAX_CANDIDATES or len(payloads) == MAX_PAYLOADS:
            return payloads, True
        run = match.group()
        decoded = decode(run[:_MAX_RUN])
        if decoded is not None:
            payloads.append(decoded)
            exhausted |= len(run) > _MAX_RUN
    return payloads, exhausted


def _payload_views(kind: str, found: tuple[list[str], bool], budget: _Budget) -> list[View]:
    """Views of decoded payloads within the budget; the last one marked truncated when a
    bound cut it or left payloads of this kind undecoded."""
    payloads, exhausted = found
    out: list[View] = []
    for payload in payloads:
        if budget.chars <= 0:
            exhausted = True
            break
        kept, cut = budget.take(payload)
        out.append(View(kind, normalise(kept), truncated=cut))
    if exhausted and out:
        out[-1] = View(kind, out[-1].text, truncated=True)
    elif exhausted:
        out.append(View(kind, "", truncated=True))
    return out


# A leading literal: the engine skips to each "%" in C.
_PERCENT_RUN = re.compile(r"%[0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2})*+")
_LETTER = re.compile("[A-Za-z]")
# A str.translate table: ASCII letters turned 13 places (rot13 is its own inverse).
ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)


def _percent_decoded(match: re.Match[str]) -> str:
    return bytes.fromhex(match.group().replace("%", "")).decode("utf-8", errors="replace")


def _url(text: str) -> str | None:
    """``text`` percent-decoded, twice (double encoding is a common filter evasion), or None
    when it has no escapes. Each run of escapes is one callback: a megabyte of them decodes
    in one call."""
    once, escapes = _PERCENT_RUN.subn(_percent_decoded, text)
    return normalise(_PERCENT_RUN.sub(_percent_decoded, once)) if escapes else None


def views(text: str) -> list[View]:
    """The normalised text, then every decoded form of it a detector should also match.

    Linear in ``len(text)``; the decoded payloads together hold at most
    :data:`MAX_DECODED_CHARS` characters, the whole-text views at most ``len(text)`` each.
    Each decoder runs only when a cheap test says it may find something (characters above
    the BMP, 16 characters in a row of the base64 or hex alphabets, a "%"), so ordinary
    prose pays for none of them.
    """
    normalised = normalise(text)
    found = [View("normalised", normalised)]
    budget = _Budget(MAX_DECODED_CHARS)
    if not text.isascii() and _has_astral(text):  # invisible payloads: raw text only
        found += _payload_views("tags", _decode_runs(_TAG_RUN, _tag_text, text), budget)
        found += _payload_views(
            "selectors", _decode_runs(_SELECTOR_RUN, _selector_text, text), budget
        )
    ascii_text = normalised if normalised.isascii() else _ascii(normalised)
    if _LONG_RUN in ascii_text.translate(_RUN_MASK):
        found += _payload_views("base64", _base64(normalised), budget)
        found += _payload_views("hex", _decode_runs(_HEX_RUN, _hex_text, normalised), budget)
    url = _url(normalised) if "%" in normalised else None
    if url is not None and url != normalised:
        found.append(View("url", url))
    # rot13 turns ASCII letters only: other characters become "?", which no rule reads as a
    # letter, and the translation keeps to CPython's fast ASCII path. It turns the folded
    # text, so an accented letter in a rot13 payload (which rot13 tools leave as it is) is
    # turned once folded: French with accents hidden in rot13 does not read back.
    if _LETTER.search(ascii_text):
        found.append(View("rot13", ascii_text.translate(ROT13)))
    return found


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
