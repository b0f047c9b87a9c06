"""Figure sizes for the book's page: every figure fits the text column and no text is too small.

The rendered book shows a figure at most :data:`TEXT_WIDTH` inches wide; a wider one is shrunk,
and its text with it. A font of ``f`` points in a figure ``w`` inches wide reads as
``f * min(1, TEXT_WIDTH / w)`` points. protolib's figure functions size their figures with
:func:`panel_figsize` and wrap long strips into grids with :func:`grid_shape`, so that every text
reads at :data:`MIN_FONT` points or more (tests/test_viz_layout.py measures it).
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.text import Text

TEXT_WIDTH = 7.0        # inches: the book's text column as rendered
MIN_FONT = 8.0          # points, once rendered
SMALL, NORMAL, LARGE = 8, 9, 10     # font sizes (points) for labels, titles, figure titles


def grid_shape(n: int, max_cols: int = 5) -> tuple[int, int]:
    """(rows, cols) for ``n`` panels, at most ``max_cols`` a row, rows as even as possible."""
    if n < 1 or max_cols < 1:
        raise ValueError(f"need at least one panel and one column, got n={n}, max_cols={max_cols}")
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def panel_figsize(rows: int, cols: int, aspect: float = 1.0, extra_height: float = 0.0,
                  width: float = TEXT_WIDTH) -> tuple[float, float]:
    """The figure size for a rows x cols grid of panels ``aspect`` (height / width) high, filling
    ``width`` inches (the text column by default); ``extra_height`` inches for titles."""
    if rows < 1 or cols < 1 or aspect <= 0 or width <= 0:
        raise ValueError(f"bad grid {rows} x {cols}, aspect {aspect} or width {width}")
    return width, rows * width / cols * aspect + extra_height


def rendered_font_sizes(fig: Figure) -> list[tuple[float, str]]:
    """(points as rendered in the book, text) for every visible, non-empty text of ``fig``."""
    shrink = min(1.0, TEXT_WIDTH / fig.get_figwidth())
    return [(t.get_fontsize() * shrink, t.get_text()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip()]


def smallest_rendered_font(fig: Figure) -> float:
    """The smallest font of ``fig`` in points as rendered (inf when it holds no text)."""
    return min((size for size, _ in rendered_font_sizes(fig)), default=math.inf)
