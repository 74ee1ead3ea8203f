from tests.textmetrics import char_error_rate, edit_distance, missing_words, word_error_rate, words

REF = "The quick brown fox jumps over the lazy dog."


def test_edit_distance() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert edit_distance(["a", "b"], ["a", "b"]) == 0


def test_word_error_rate_counts_substitutions_insertions_deletions() -> None:
    assert word_error_rate(REF, "the quick brown fox jumps over the lazy dog") == 0
    assert word_error_rate(REF, "A quick brown fox jumps over the lazy dog!") == 1 / 9
    assert word_error_rate(REF, "") == 1
    # Shuffled words are errors, not a match.
    assert word_error_rate(REF, "dog lazy the over jumps fox brown quick the") > 0.5


def test_char_error_rate_and_words() -> None:
    assert char_error_rate("Percolate reads 42 pages", "Percolate  reads 42 pages") == 0
    assert char_error_rate("Percolate reads 42 pages", "Percolate reads 42pages") == 1 / 24
    assert words("Meeting notes, 14 March") == ["meeting", "notes", "14", "march"]
    assert missing_words("lazy dog", "the lazy cat") == ["dog"]
