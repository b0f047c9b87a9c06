"""protolib: k-means-based post-hoc self-explanation of CNNs.

The package in one screen. Each folder is a layer; a layer imports the layers listed above it,
never those below (``core`` is the ground). A name ending in ``/`` is a package, its modules in
brackets. ``tests/test_layout.py`` imports every module named here and checks that none is missing.

core/            foundations
    config           run profiles (quick, paper), data and cache roots, device, workers, AMP dtype
    run              ``Run``: a run's dataset, profile, seed and device, resolved once, passed down
    store            the one cache: keys from data fingerprints and the code digest, atomic writes,
                     locks; ``python -m protolib.core.store --list`` / ``--clear``
    data/            datasets by name [base, digits, mnist, stl10, cub, birds, birds.species,
                     birds.render, birds224]
    models           backbones with a bias-free head, ImageNet weights, a weights fingerprint
    narrow_resnet    ResNet18/34 at a smaller width: ResNet's grids at a fraction of the cost
    gap              the GAP + linear split of any CNN (encoder, head)
    stages           the encoder's stages, found from the model (a stage ends where the grid shrinks)
    hooks            a layer by its dotted name; layer outputs during forward passes
    train            the KMEx training recipe; load-or-train through ``store``
    precision        training's fast path: bfloat16 + channels-last where the CPU has it, else float32
    features         batched, cached pooled embeddings and logits
    inference        a dataset through a model in batches, on the model's device
    backbone         a chapter's first step: the cached backbone, its splits, a printed description
    checks           argument checks shared by the entry points (clear errors)
    extras           optional dependencies and the extra that installs each
    convert          tensors to images for plots
    determinism      exact float32 on GPUs, tolerances per dtype
    tables           the one Markdown table renderer
method/          the paper's method
    theorem1         Theorem 1: classifier columns as prototypes, per-pixel evidence maps
    kmex             ``KMExClassifier``: class-wise k-means prototypes (a scikit-learn estimator)
    metrics          Table 1's alignment cosines, accuracies
    similarity       cosine similarities of prototypes and embeddings
    explain/         the encoder's explanation, eq. 6-11 [blocks, kmeans, kmeans_ops,
                     kmeans_backends, kmeans_dask, synthetic_pixels, maps, maps_result, maps_fit,
                     maps_multi, maps_cache, block_assign, cam, patches, part_scores]
baselines/       the baseline
    protopnet/       ProtoPNet [model, losses, stages, push, analysis, recipe, schedule, stage_cache]
evaluation/      are the explanations right? [faithfulness, sanity, localisation, baselines,
                 methods, evaluate, road, consistency, toy, stats, verdict]
viz/             figures: prototypes in embedding space (the package itself) [maps, widgets,
                 protopnet, layout, umap_kernels]
reproduce/       the paper's numbers, the protocol, records and their check, figures, the CLI
                 (``python -m protolib.reproduce``) [paper, keys, steps, records, protocol, tables,
                 check, departures, table2_maps, figures, cli]
    geometry/        the paper's 224 px geometry beside 64 px [recipe, grids, evaluation, record,
                     summary, claims, live, birds_tiny]
"""

__version__ = "0.1.0"

# The public API: the names a user of the method needs, each with a docstring example (a doctest).
from .core.data import load  # noqa: E402
from .core.gap import split_gap_linear  # noqa: E402
from .core.run import Run  # noqa: E402
from .core.stages import stages  # noqa: E402
from .evaluation.verdict import verdict  # noqa: E402
from .method.explain.cam import importance_maps  # noqa: E402
from .method.explain.maps import ExplanationMaps  # noqa: E402
from .method.kmex import KMExClassifier  # noqa: E402
from .method.theorem1 import theorem1_check  # noqa: E402

__all__ = ["load", "Run", "split_gap_linear", "stages", "theorem1_check", "KMExClassifier", "ExplanationMaps",
           "importance_maps", "verdict"]
