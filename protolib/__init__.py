"""protolib: k-means-based post-hoc self-explanation of CNNs.

Foundations
    ``config``       run profiles (``quick``, ``paper``), epochs override, data and cache roots, device,
                     DataLoader workers, mixed precision, local ImageNet weights
    ``run``          ``Run``: this run's dataset, profile, seed and device, resolved once and passed down
    ``store``        the one cache: keys with data-content fingerprints, atomic writes, locks,
                     ``python -m protolib.store --list`` / ``--clear``
    ``data``         dataset registry: digits, MNIST, STL-10, CUB-200-2011, synthetic birds
    ``models``       backbones with a bias-free head, their ImageNet weights, a weights fingerprint
    ``gap``          the GAP + linear split of any CNN (encoder, head), refusing other heads
    ``stages``       the encoder's stages found from the model (a stage ends where the grid shrinks)
    ``hooks``        a layer by its dotted name; the outputs of layers during forward passes
    ``narrow_resnet`` ResNet18/34 at a smaller width (``resnet18_w16``): ResNet's grids at a fraction of the cost
    ``train``        the KMEx training recipe; load-or-train through ``store``
    ``features``     batched (and cached) pooled embeddings z and logits
    ``backbone``     a chapter's first step: the cached backbone, its splits, one printed description
    ``_checks``      the argument checks shared by the public entry points (clear errors)
The paper
    ``sem``          Theorem 1: classifier columns as prototypes, per-pixel evidence maps
    ``kmex``         ``KMExClassifier``, class-wise k-means prototypes (scikit-learn estimator)
    ``metrics``      Table 1 alignment cosines, accuracies
    ``explain``      the encoder's explanation, one module per step (see its docstring):
                     ``blocks`` (eq. 6-8), ``kmeans`` and its backends, ``maps`` (eq. 9-10,
                     ``ExplanationMaps``) with ``maps_result``, ``maps_fit``, ``maps_multi``,
                     ``maps_cache``, ``cam`` (eq. 11 and its propagation),
                     ``patches``, ``part_scores``, ``viz_maps``, ``widgets``
    ``protopnet``    the ProtoPNet baseline: model, losses, stages, push, analysis
Reproduction
    ``reproduce``    a package: the paper's numbers (``paper``), the protocol per (dataset, seed)
                     (``steps``, ``keys``, ``records``, ``protocol``), tables and their check
                     (``tables``, ``check``, ``departures``), Table 2's map rows (``table2_maps``),
                     Figures 1 and 2 (``figures``), the CLI (``python -m protolib.reproduce``)
    ``tables``       the one Markdown table renderer of the book and the reproduction
    ``quality``      are the explanations right? faithfulness, randomisation, localisation, ROAD, consistency
    ``geometry``     the 224 px birds testbed: recipes, chapter 8's evaluation per seed, the record command
Figures
    ``viz``; the maps' figures and widget are in ``explain``
"""

__version__ = "0.1.0"
