"""Explanations at the paper's geometry: the 224 px birds testbed and its recorded run.

``recipe``      the testbed's recipes (data, narrow ResNet, schedule, evaluation sizes), the image-size check
``evaluation``  chapter 8's evaluation of one seed, plus ROAD and part consistency/stability
``record``      per seed: train or load, fit maps, Table 2's rows, the evaluation; JSON with provenance
``summary``     a recorded run read back: values per seed, means with 95 % intervals over seeds
``birds_tiny``  a 64 px, 2-class stand-in registered for tests

The command (resumable; one JSON file per seed in ``--out``)::

    python -m protolib.geometry --recipe w16 --seeds 0 1 2 --out book/results/geometry224
"""

from .recipe import RECIPES, GeometryRecipe, check_image_size, get_recipe  # noqa: F401
