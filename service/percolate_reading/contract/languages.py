"""Languages a job's `language` option may name: the codes the speech model (Whisper) knows.

The gateway refuses any other value at submit (a typo would otherwise cost a full parse and
end in a failed job); OCR takes the same option and reads every script it has with one model.
Kept equal to faster-whisper's table by a test.
"""

from __future__ import annotations

LANGUAGE_CODES: frozenset[str] = frozenset(
    {
        "af",
        "am",
        "ar",
        "as",
        "az",
        "ba",
        "be",
        "bg",
        "bn",
        "bo",
        "br",
        "bs",
        "ca",
        "cs",
        "cy",
        "da",
        "de",
        "el",
        "en",
        "es",
        "et",
        "eu",
        "fa",
        "fi",
        "fo",
        "fr",
        "gl",
        "gu",
        "ha",
        "haw",
        "he",
        "hi",
        "hr",
        "ht",
        "hu",
        "hy",
        "id",
        "is",
        "it",
        "ja",
        "jw",
        "ka",
        "kk",
        "km",
        "kn",
        "ko",
        "la",
        "lb",
        "ln",
        "lo",
        "lt",
        "lv",
        "mg",
        "mi",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "ne",
        "nl",
        "nn",
        "no",
        "oc",
        "pa",
        "pl",
        "ps",
        "pt",
        "ro",
        "ru",
        "sa",
        "sd",
        "si",
        "sk",
        "sl",
        "sn",
        "so",
        "sq",
        "sr",
        "su",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "tk",
        "tl",
        "tr",
        "tt",
        "uk",
        "ur",
        "uz",
        "vi",
        "yi",
        "yo",
        "yue",
        "zh",
    }
)


# `language` for a recording that switches language: each segment's language is detected.
MULTILINGUAL = "multi"
_MULTILINGUAL_SPELLINGS = frozenset({"multi", "multilingual"})


def normalize_language(value: str) -> str | None:
    """The canonical form of `value` (case and blanks ignored), or None if unknown: one code
    ("de"), the expected languages of a mixed recording ("en,de"), or "multi"."""
    code = value.strip().lower()
    if code in _MULTILINGUAL_SPELLINGS:
        return MULTILINGUAL
    parts = [p.strip() for p in code.split(",")]
    if not all(p in LANGUAGE_CODES for p in parts):
        return None
    return ",".join(dict.fromkeys(parts))


def expected_languages(language: str | None) -> tuple[bool, tuple[str, ...]]:
    """(mixed-language?, the languages named) for a normalized `language`: "multi" is mixed
    with none named, "en,de" is mixed between those two, "de" is one language."""
    if not language:
        return False, ()
    if language == MULTILINGUAL:
        return True, ()
    codes = tuple(language.split(","))
    return len(codes) > 1, codes
