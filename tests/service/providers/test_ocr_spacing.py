"""Word spaces put back into OCR lines: the pure gap logic on hand-made ink profiles, then the
real recogniser on print it reads without spaces."""

from __future__ import annotations

import numpy as np
import pymupdf
import pytest

from percolate_reading.parse.providers import ocr_spacing
from percolate_reading.parse.providers.ocr_spacing import blank_runs, column_ink, restore_spaces
from tests.textmetrics import missing_words


def _profile(*parts: tuple[str, int]) -> list[bool]:
    """Columns as runs: ("ink", 6), ("gap", 2), ..."""
    return [kind == "ink" for kind, width in parts for _ in range(width)]


def test_blank_runs_are_between_the_first_and_last_ink() -> None:
    ink = _profile(("gap", 3), ("ink", 2), ("gap", 4), ("ink", 1), ("gap", 1), ("ink", 2), ("gap", 5))
    assert blank_runs(ink) == [(5, 9), (10, 11)]
    assert blank_runs([False] * 4) == []


# Three-letter "words": 6 ink columns and 1 blank between letters; a word gap is 8 blank columns.
_LETTER = [("ink", 6), ("gap", 1)]
_WORD = [*_LETTER, *_LETTER, ("ink", 6)]


def _steps(text: str) -> list[float]:
    """One CTC step per character at its letter's middle (one step = one column here); a space
    is read in the gap it stands for."""
    steps: list[float] = []
    x = 0.0
    for ch in text:
        if ch == " ":
            steps.append(x + 1)
            continue
        steps.append(x + 3)
        x += 7
    return steps


def test_a_wide_gap_between_letters_becomes_a_space() -> None:
    ink = _profile(*_WORD, ("gap", 8), *_WORD, ("gap", 8), *_WORD)
    text = "thecatsat"
    # Steps as read from the image: the words sit 8 columns apart, not 1.
    steps = [3.0, 10.0, 17.0, 31.0, 38.0, 45.0, 59.0, 66.0, 73.0]
    assert restore_spaces(text, steps, 1.0, ink) == "the cat sat"
    # Narrow (letter) gaps alone: nothing changes.
    tight = _profile(*_WORD, ("gap", 1), *_WORD)
    assert restore_spaces("thecat", _steps("thecat"), 1.0, tight) == "thecat"


def test_spaces_already_read_stay_single() -> None:
    ink = _profile(*_WORD, ("gap", 8), *_WORD)
    steps = [3.0, 10.0, 17.0, 23.0, 31.0, 38.0, 45.0]
    assert restore_spaces("the cat", steps, 1.0, ink) == "the cat"


def test_digits_and_cjk_keep_their_gaps() -> None:
    ink = _profile(*_WORD, ("gap", 8), *_WORD)
    steps = [3.0, 10.0, 17.0, 31.0, 38.0, 45.0]
    assert restore_spaces("102411", steps, 1.0, ink) == "102411"  # "1"'s bearings look like gaps
    assert restore_spaces("表格数据分析", steps, 1.0, ink) == "表格数据分析"
    assert restore_spaces("Tab102", steps, 1.0, ink) == "Tab 102"  # a letter next to a digit


def test_steps_that_do_not_match_the_text_change_nothing() -> None:
    ink = _profile(*_WORD, ("gap", 8), *_WORD)
    assert restore_spaces("thecat", [3.0, 10.0], 1.0, ink) == "thecat"
    assert restore_spaces("thecat", _steps("thecat"), 1.0, [True] * len(ink)) == "thecat"  # dark ground


def test_dashes_slashes_and_punctuation_get_no_space() -> None:
    ink = _profile(*_WORD, ("gap", 8), *_WORD)
    steps = [3.0, 10.0, 17.0, 24.0, 31.0, 38.0, 45.0]
    # A dash's ends, a slash's, and the side of a bracket or stop facing the word read as wide
    # gaps; none of them is a space.
    for text in ("AB-CDEF", "SEM/EDX", "abc:def", "abc)def"):
        assert restore_spaces(text, steps, 1.0, ink) == text
    assert restore_spaces("abc(def", [3.0, 10.0, 17.0, 31.0, 38.0, 45.0, 52.0], 1.0, ink) == "abc (def"


def test_ink_of_a_line_leaves_out_its_neighbours_and_ruling_lines() -> None:
    crop = np.full((28, 100), 255, dtype=np.uint8)
    crop[8:20, 5:40] = 0  # a word
    crop[8:20, 55:95] = 0  # the next word: columns 40-54 are the gap between them
    crop[0:3, 38:60] = 0  # descenders of the line above, apart from this line by blank rows
    crop[20:25, 10:13] = 0  # this line's own descender, reaching down to ...
    crop[25:28, :] = 0  # ... the cell's ruling line under it
    ink = column_ink(crop)
    assert not any(ink[40:55])
    assert all(ink[5:40])
    assert all(ink[55:95])
    assert blank_runs(ink) == [(40, 55)]


SENTENCE = (
    "Rain came late and the river stayed low all summer while the farmers waited for the "
    "market report from the northern valley."
)


def _small_print(dpi: int) -> np.ndarray:
    """Two lines of 9 pt print at `dpi`: at scan resolutions the recogniser reads them as
    one run of letters ("Raincamelateandtheriver...")."""
    doc = pymupdf.open()
    page = doc.new_page(width=420, height=80)
    words = SENTENCE.split()
    page.insert_text((10, 25), " ".join(words[:11]), fontsize=9)
    page.insert_text((10, 43), " ".join(words[11:]), fontsize=9)
    pix = page.get_pixmap(dpi=dpi)
    return np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.h, pix.w, pix.n)[:, :, :3].copy()


@pytest.mark.ocr
@pytest.mark.parametrize("dpi", [120, 150, 200])
def test_small_print_is_read_with_its_word_spaces(dpi: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from percolate_reading.parse.providers.ocr import recognize_pixels

    image = _small_print(dpi)
    text = " ".join(line.text for line in recognize_pixels(image))
    assert len(missing_words(SENTENCE, text)) <= 1, text
    # The premise: without the gaps the model's own reading loses most of the words.
    monkeypatch.setattr(ocr_spacing, "WORD_GAP", float("inf"))
    raw = " ".join(line.text for line in recognize_pixels(image))
    assert len(missing_words(SENTENCE, raw)) > len(SENTENCE.split()) // 2, raw
