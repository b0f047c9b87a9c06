"""Are the explanations right? Numbers for importance maps: faithfulness (deletion and
insertion), the cascading randomisation check, localisation against ground-truth parts, and
the maps of every compared method (ours, Grad-CAM, Deep Feature Factorization, baselines)."""

from . import baselines, evaluate, faithfulness, localisation, methods, sanity  # noqa: F401
from .stats import clearly_greater, markdown_table, mean_ci  # noqa: F401
