"""Word spaces the recognition model leaves out, put back from the line's pixels.

The recogniser RapidOCR ships (PP-OCRv4, trained on Chinese and Latin) often reads a line of
Latin print as one run of letters ("scribedbytheCivilServiceRulesand"); keyword search and
BM25 then miss every word on it. The gaps are still in the image: between two words the ink
leaves a blank run of columns several times wider than between two letters. CTC decoding says
at which step along the line each character was read, so a blank run between two characters
wider than WORD_GAP of the line's mean character advance is a space.

Only where a letter is involved: beside a narrow digit ("11", "1,024") the blank is as wide
as a word gap, and scripts written without spaces (CJK) are left as read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WORD_GAP = 0.45  # of the mean character advance; 0.3 split words, 0.6 missed spaces
_CJK_START = 0x2E80  # radicals, kana, ideographs, Hangul: no spaces between words
# Punctuation a space never comes before (closing) or after (opening), and marks that join
# their neighbours ("A-CIVIL", "SEM/EDX"; a dash's ends leave gaps as wide as a word's).
_CLOSING = frozenset(".,;:!?)]}%\u2019\u201d\u00bb")
_OPENING = frozenset("([{\u2018\u201c\u00ab")
_JOINING = frozenset("-/\u2010\u2011\u2013\u2014")


def flag_runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of true flags."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for x, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = x
        elif not flag and start is not None:
            runs.append((start, x))
            start = None
    return runs


def blank_runs(ink: Sequence[bool]) -> list[tuple[int, int]]:
    """[start, end) of the runs of columns without ink between the line's first and last ink."""
    return [(a, b) for a, b in flag_runs([not v for v in ink]) if a > 0 and b < len(ink)]


def column_ink(crop: Any) -> list[bool]:
    """Which columns of a line image hold ink (Otsu's threshold, dark on light), counting only
    the line's own rows: a crop's top or bottom may hold the descenders or ascenders of the
    lines above and below (apart from the line by blank rows), which would fill its word gaps.
    Light text on a dark ground comes out as ink everywhere: no blank runs, nothing changes."""
    import cv2
    import numpy as np

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    _threshold, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    # Horizontal strokes twice as long as the crop is high are ruling lines (a table cell's) or
    # underlines, not letters: they would fill every gap, and join the line to the next one.
    height = mask.shape[0]
    if mask.shape[1] > 2 * height:
        stroke = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * height, 1))  # an em dash is shorter
        rules = cv2.morphologyEx(mask, cv2.MORPH_OPEN, stroke)
        mask = cv2.subtract(mask, rules)
    ink = mask > 0
    top, bottom = _densest_band(ink.sum(axis=1).tolist())
    inked: list[bool] = np.any(ink[top:bottom], axis=0).tolist()
    return inked


def _densest_band(per_row: Sequence[int]) -> tuple[int, int]:
    """[top, bottom) of the run of inked rows holding the most ink (all rows when none)."""
    bands = flag_runs([count > 0 for count in per_row])
    return max(bands, key=lambda band: sum(per_row[band[0] : band[1]]), default=(0, len(per_row)))


def _may_space(prev: str, ch: str) -> bool:
    if " " in (prev, ch) or ord(prev) >= _CJK_START or ord(ch) >= _CJK_START:
        return False
    if ch in _CLOSING or prev in _OPENING or prev in _JOINING or ch in _JOINING:
        return False
    # A letter on one side: "Table3", "3rd", "end.Next", but not "1,024" or "11".
    return prev.isalpha() or ch.isalpha()


def restore_spaces(text: str, steps: Sequence[float], step_px: float, ink: Sequence[bool]) -> str:
    """`text` with a space before each character whose CTC step comes first after the middle
    of a blank run wider than a word gap (`steps`: one per character, spaces included;
    `step_px` image columns per step). Unchanged when the steps do not match the text."""
    inked = [x for x, v in enumerate(ink) if v]
    letters = len(text.replace(" ", ""))
    if len(steps) != len(text) or letters < 2 or not inked:
        return text
    widest = WORD_GAP * (inked[-1] - inked[0]) / letters
    before: set[int] = set()
    for a, b in blank_runs(ink):
        if b - a <= widest:
            continue
        middle = (a + b) / 2 / step_px - 0.5  # in steps; a step's centre is step + 0.5
        j = next((i for i, step in enumerate(steps) if step > middle), None)
        if j and _may_space(text[j - 1], text[j]):
            before.add(j)
    return "".join(" " + ch if i in before else ch for i, ch in enumerate(text))


def respace(crop: Any, text: str, word_info: Sequence[Any]) -> str:
    """`restore_spaces` for one RapidOCR result read with `return_word_box=True`: its info is
    [steps over the line, words (lists of characters, spaces included), each character's step,
    word kinds, confidences]."""
    try:
        total_steps, words, word_steps = float(word_info[0]), word_info[1], word_info[2]
        steps = [float(s) for w in word_steps for s in w]
        read = "".join(ch for w in words for ch in w)
    except (IndexError, TypeError, ValueError):
        return text
    if read != text or total_steps <= 0:
        return text
    return restore_spaces(text, steps, crop.shape[1] / total_steps, column_ink(crop))
