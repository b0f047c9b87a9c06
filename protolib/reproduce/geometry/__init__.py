"""Explanations at the paper's geometry: the 224 px birds testbed and its recorded run.

``recipe``      the testbed's recipes (data, narrow ResNet, schedule, evaluation sizes), the image-size check
``grids``       why the grid size matters: each stage's grid, receptive field and k-means sample
``evaluation``  chapter 8's evaluation of one seed, plus ROAD and part consistency/stability
``record``      per seed: train or load, fit maps, Table 2's rows, the evaluation; JSON with provenance
``summary``     a recorded run read back: values per seed, means with 95 % intervals, both geometries side by side
``claims``      the paper's map claims and chapter 8's findings, each a verdict over seeds
``live``        the chapter's live slice (seed 0's kept weights, a few images) checked against the record
``birds_tiny``  a 64 px, 2-class stand-in registered for tests

The command (resumable; one JSON file per seed in ``--out``, and seed 0's weights)::

    python -m protolib.reproduce.geometry --recipe w16 --seeds 0 1 2 --out protolib/reproduce/results/geometry/w16
    python -m protolib.reproduce.geometry --recipe w16-at64 --seeds 0 1 2 --out protolib/reproduce/results/geometry/w16-at64
"""

from .recipe import RECIPES, GeometryRecipe, check_image_size, get_recipe  # noqa: F401
