"""Figures fit the book's text column (7 in) and no text reads under 8 pt once rendered; long
strips become grids. Measured on the figures protolib's plotting functions return."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from test_viz_maps import _tiny_rgb_dataset  # noqa: E402

from protolib.core.models import build_model  # noqa: E402
from protolib.method.explain import maps
from protolib.method.explain.patches import representative_patches  # noqa: E402
from protolib.viz import layout as viz_layout  # noqa: E402
from protolib.viz import maps as viz_maps  # noqa: E402
from protolib.viz.widgets import MapExplorer  # noqa: E402


def _readable(fig):
    assert fig.get_figwidth() <= viz_layout.TEXT_WIDTH + 1e-9, fig.get_figwidth()
    small = [(round(s, 2), t) for s, t in viz_layout.rendered_font_sizes(fig) if s < viz_layout.MIN_FONT]
    assert not small, f"text under {viz_layout.MIN_FONT} pt once rendered: {small[:5]}"
    plt.close(fig)


def test_grid_shape_and_figsize_by_hand():
    assert viz_layout.grid_shape(9, 5) == (2, 5)
    assert viz_layout.grid_shape(4, 5) == (1, 4)
    assert viz_layout.grid_shape(11, 5) == (3, 4)
    assert viz_layout.panel_figsize(2, 5, aspect=1.0) == (7.0, 2.8)
    with pytest.raises(ValueError, match="n=0, max_cols=5"):
        viz_layout.grid_shape(0)


def test_rendered_size_shrinks_with_a_wide_figure():
    fig = plt.figure(figsize=(14, 2))
    fig.suptitle("wide", fontsize=10)
    assert viz_layout.smallest_rendered_font(fig) == pytest.approx(5.0)   # 10 pt at half size
    fig.set_figwidth(7)
    assert viz_layout.smallest_rendered_font(fig) == pytest.approx(10.0)
    plt.close(fig)


def test_nine_panel_strip_becomes_a_readable_grid():
    image = torch.rand(3, 32, 32)
    shown = {f"method {i}": torch.rand(8, 8) for i in range(8)}   # chapter 8: the input + 8 maps
    fig = viz_maps.compare_maps(image, shown, title="test image 0")
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.images]) == 9
    assert {round(ax.get_position().y0, 1) for ax in fig.axes if ax.images}.__len__() == 2   # two rows
    _readable(fig)


def test_segment_grid_and_figure1_are_readable():
    torch.manual_seed(0)
    model = build_model("resnet18", 2).eval()
    ds = _tiny_rgb_dataset()
    ex = {n: maps.ExplanationMaps(model, n, k_per_class=2, progress=False).fit(ds) for n in ("B4", "B234")}
    patches = {n: representative_patches(ex[n], ds) for n in ex}
    _readable(MapExplorer(ex, ds, patches).render(1, ("B4", "B234"), targets=0))
    images = [ds[i][0] for i in range(6)]
    segs = {n: list(ex[n].explain(torch.stack(images)).segments) for n in ex}
    _readable(viz_maps.segment_grid(images, segs, title="segments"))


def test_umap_figure_and_protopnet_history_are_readable():
    import numpy as np

    from protolib.baselines.protopnet.stages import StageResult
    from protolib.viz import PrototypeUMAP, plot_prototype_umap
    from protolib.viz.protopnet import plot_history
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    res = PrototypeUMAP(rng.normal(size=(40, 2)), y, rng.normal(size=(40, 2)), y, np.arange(4),
                        rng.normal(size=(4, 2)), rng.normal(size=(4, 2)), rng.normal(size=(8, 2)),
                        np.repeat(np.arange(4), 2), None)
    _readable(plot_prototype_umap(res, class_names=["a", "b", "c", "d"], title="Figure 2, digits, seed 0"))
    keys = ("cross_entropy", "cluster", "separation", "accuracy")
    hist = [{k: 1.0 / (e + 1) for k in keys} for e in range(3)]
    fig = plot_history({"warm": StageResult("warm", hist), "joint": StageResult("joint", hist)})
    assert len([ax for ax in fig.axes if ax.lines]) == 4 and fig.axes[0].get_position().y0 > 0.5  # 2 x 2
    acc = fig.axes[3]                                       # the history's fraction, plotted in percent
    assert acc.get_title() == "accuracy (%)" and list(acc.lines[0].get_ydata()) == [100.0, 50.0, 100 * (1 / 3)]
    _readable(fig)
