"""An ipywidgets explorer of explanation and importance maps: choose an image, a block set, a class.

``MapExplorer.render`` draws the same figure without widgets, so a chapter can show a static
default beside the explorer (a built book has no kernel to drive the widgets).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from torch.utils.data import Dataset

from protolib.core.extras import require
from protolib.method.explain import cam
from protolib.method.explain.maps import ExplanationMaps
from protolib.method.explain.patches import Patches
from protolib.viz import maps as viz_maps

PREDICTED = -1  # class choice meaning "the class the CNN predicts"


class MapExplorer:
    """Figure 1 panels for any image of ``dataset``, block set of ``explainers`` and class.

    explainers: fitted block sets of one model, e.g. {"B4": ..., "B34": ..., "B234": ...} (all
    are used to propagate the importance); patches: {block set: Patches} for those shown.
    """

    def __init__(self, explainers: Mapping[str, ExplanationMaps], dataset: Dataset,
                 patches: Mapping[str, Patches], class_names: Sequence[str] | None = None):
        self.explainers, self.dataset, self.patches = dict(explainers), dataset, dict(patches)
        first = next(iter(self.explainers.values()))
        names = class_names or getattr(dataset, "classes", None) or range(first.num_classes_)
        self.class_names = [str(c) for c in names]

    def render(self, index: int = 0, block_sets: str | Sequence[str] = ("B4", "B234"), targets: int = PREDICTED):
        """The figure for image ``index``, the block set(s) named and the class ``targets``."""
        names = [block_sets] if isinstance(block_sets, str) else list(block_sets)
        unknown = [n for n in names if n not in self.patches]
        if unknown:
            raise ValueError(f"no patches for block sets {unknown}; available: {sorted(self.patches)}")
        x, y = self.dataset[index]
        imp = cam.importance_maps(self.explainers, x[None], None if targets == PREDICTED else targets)
        image = self.dataset.denormalize(x) if hasattr(self.dataset, "denormalize") else x
        t, cnn = int(imp.targets[0]), int(imp.logits.argmax(1)[0])
        votes = ", ".join(f"{n}: {self.class_names[int(imp.explanations[n].prediction[0])]}" for n in names)
        title = (f"image {index}: true {self.class_names[y]}, CNN {self.class_names[cnn]}, eq. 10 {votes}; "
                 f"importance for class {self.class_names[t]}")
        return viz_maps.figure1(image, {n: imp.explanations[n] for n in names}, {n: imp.maps[n][0] for n in names},
                                {n: self.patches[n] for n in names}, self.class_names, title)

    def widget(self, index: int = 0, block_sets: str | Sequence[str] = ("B4", "B234"), targets: int = PREDICTED):
        """An ipywidgets box: image slider, block-set and class drop-downs, and the figure; it opens
        on ``render(index, block_sets, targets)``."""
        w = require("ipywidgets", "the maps explorer widget")
        from IPython.display import display

        image = w.IntSlider(value=index, min=0, max=len(self.dataset) - 1, description="image")
        options = [("B4 + B234", ("B4", "B234"))] if {"B4", "B234"} <= set(self.patches) else []
        options += [(n, n) for n in self.patches]
        start = tuple(block_sets) if not isinstance(block_sets, str) else block_sets
        values = [v for _, v in options]
        block = w.Dropdown(options=options, value=start if start in values else values[0], description="block set")
        choice = w.Dropdown(options=[("predicted by the CNN", PREDICTED)] +
                            [(str(c), i) for i, c in enumerate(self.class_names)], value=targets, description="class")
        out = w.Output()

        def redraw(_=None):
            with out:
                out.clear_output(wait=True)
                fig = self.render(image.value, block.value, choice.value)
                display(fig)
                plt.close(fig)

        for control in (image, block, choice):
            control.observe(redraw, names="value")
        redraw()
        return w.VBox([w.HBox([image, block, choice]), out])


__all__ = ["PREDICTED", "MapExplorer"]
