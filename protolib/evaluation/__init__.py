"""Are the explanations right? Numbers for importance maps: faithfulness (deletion and
insertion), the cascading randomisation check, localisation against ground-truth parts, and
the maps of every compared method (ours, Grad-CAM, Deep Feature Factorization, baselines), ROAD
(``road``, pytorch-grad-cam's) and part consistency/stability (``consistency``, Huang et al.)."""

from . import (  # noqa: F401
    baselines,
    consistency,
    evaluate,
    faithfulness,
    localisation,
    methods,
    road,
    sanity,
)
from .stats import above, markdown_table, mean_ci  # noqa: F401
