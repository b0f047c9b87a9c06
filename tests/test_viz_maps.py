"""Figures and the explorer: colours agree between maps and patches; the widget renders."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402

from protolib.core.data.base import DatasetSpec, TensorImages  # noqa: E402
from protolib.core.models import build_model  # noqa: E402
from protolib.method.explain import maps, maps_result
from protolib.method.explain.patches import Patches, representative_patches  # noqa: E402
from protolib.viz import maps as viz_maps  # noqa: E402
from protolib.viz.widgets import MapExplorer  # noqa: E402


def test_segment_colours_follow_segment_size_and_match_patch_borders():
    segments = torch.tensor([[[2, 2, 2, 0], [2, 2, 0, 0], [5, 5, 0, 0], [5, 5, 5, 5]]])  # sizes: 2->5, 0->5, 5->6
    counts = torch.bincount(segments.flatten(), minlength=6).view(1, 6)
    assert viz_maps.ordered_segments(counts[0]) == [5, 0, 2]  # largest first, ties by id
    ex = maps_result.ExplanationMap(segments, counts, maps_result.class_scores(counts, 2), torch.arange(3).repeat_interleave(2))
    patches = Patches(torch.rand(6, 3, 4, 4), torch.zeros(6, 4), torch.arange(6), ex.prototype_classes, torch.zeros(6))
    fig = plt.figure()
    viz_maps.explanation_panel(fig, torch.zeros(3, 16, 16), ex, torch.randn(4, 4), patches, "B234", ["a", "b", "c"])
    patch_axes = fig.axes[3:]
    assert len(fig.axes) == 3 + 3 and [a.get_title().split()[0] for a in patch_axes] == ["p5", "p0", "p2"]
    colours = viz_maps.segment_colours([5, 0, 2])
    for ax, k in zip(patch_axes, (5, 0, 2)):
        assert mcolors.to_rgb(ax.spines["top"].get_edgecolor()) == colours[k]
    # on a black image, segment 5 (bottom-left cell, not on a boundary) is 0.6 x that same colour
    overlay = fig.axes[1].images[0].get_array()
    np.testing.assert_allclose(overlay[15, 0], 0.6 * np.array(colours[5]))
    assert (overlay[7, 0] == 1.0).all()  # last row of segment 2 above segment 5: a white boundary
    plt.close(fig)


def _tiny_rgb_dataset(n_per_class=3, size=32):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2 * n_per_class, 3, size, size), generator=g, dtype=torch.uint8)
    images[::2, 0] = 255  # class 0: red channel saturated
    spec = DatasetSpec("tiny", 2, size, (0.5,) * 3, (0.25,) * 3, None, "", "")
    return TensorImages(spec, "train", images, torch.arange(2 * n_per_class) % 2, ["red", "other"], "tiny rgb")


def test_explorer_renders_a_static_figure_and_a_widget():
    torch.manual_seed(0)
    model = build_model("resnet18", 2).eval()
    ds = _tiny_rgb_dataset()
    ex = {n: maps.ExplanationMaps(model, n, k_per_class=2, progress=False).fit(ds) for n in ("B4", "B34", "B234")}
    patches = {n: representative_patches(ex[n], ds) for n in ("B4", "B234")}
    explorer = MapExplorer(ex, ds, patches)
    fig = explorer.render(1, ("B4", "B234"), targets=0)
    assert "importance for class red" in fig._suptitle.get_text() and len(fig.subfigs) == 2
    plt.close(fig)
    box = explorer.widget()
    assert len(box.children) == 2 and box.children[0].children[0].max == len(ds) - 1
    controls = explorer.widget(2, "B234", targets=1).children[0].children
    assert [c.value for c in controls] == [2, "B234", 1]
    plt.close("all")
