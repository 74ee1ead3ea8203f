"""Error rates for tests of model output (speech, OCR).

A model build may change a word or a character (Whisper base hears "a quick brown fox" on one
CTranslate2 release and "the quick brown fox" on another), so those tests bound the error
rate against a reference instead of comparing exact tokens, and name the key words that must
be there. The bounds are tight enough that a broken pipeline (wrong sample rate, empty or
shuffled output, a dropped line) fails them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def words(text: str) -> list[str]:
    """Lower-case words and numbers, punctuation dropped."""
    return re.findall(r"[^\W_]+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref = words(reference)
    assert ref, "empty reference"
    return edit_distance(ref, words(hypothesis)) / len(ref)


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Over the characters with whitespace collapsed, case kept (OCR should keep case)."""
    ref = " ".join(reference.split())
    assert ref, "empty reference"
    return edit_distance(ref, " ".join(hypothesis.split())) / len(ref)


def missing_words(expected: str, text: str) -> list[str]:
    """The words of `expected` that `text` lacks, in order (empty when all are there)."""
    have = set(words(text))
    return [w for w in words(expected) if w not in have]
