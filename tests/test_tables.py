"""The one Markdown table renderer: exact text for hand-made cells, clear errors for ragged rows."""

import pytest

from protolib.core import tables


def test_markdown_lays_out_header_rule_and_rows_exactly():
    text = tables.markdown(["model", "a", "b"], [["CNN", "1.0", 2], ["KMEx", "3.5 (4.0)", "–"]], right=[1, 2])
    assert text == ("| model | a | b |\n"
                    "| --- | ---: | ---: |\n"
                    "| CNN | 1.0 | 2 |\n"
                    "| KMEx | 3.5 (4.0) | – |")


def test_markdown_without_rows_is_the_header_and_rule():
    assert tables.markdown(["x"], []) == "| x |\n| --- |"


def test_markdown_rejects_a_row_of_another_width_and_an_empty_header():
    with pytest.raises(ValueError, match="row 1 has 1 cells, the header 2"):
        tables.markdown(["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="at least one column"):
        tables.markdown([], [])


def test_with_reference_puts_the_papers_value_in_parentheses_at_our_digits():
    assert tables.with_reference("0.12", 0.375, 2) == "0.12 (0.38)"  # 0.375 is exact in binary: rounds half to even
    assert tables.with_reference("91.2", 88.04, 1) == "91.2 (88.0)"
    assert tables.with_reference("91.2", None, 1) == "91.2"
