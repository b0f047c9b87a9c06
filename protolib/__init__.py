"""protolib: k-means-based post-hoc self-explanation of CNNs.

Foundations
    ``config``       run profiles (``quick``, ``paper``), epochs override, data and cache roots, device,
                     DataLoader workers, mixed precision, local ImageNet weights
    ``store``        the one cache: keys with data-content fingerprints, atomic writes, locks
    ``data``         dataset registry: digits, MNIST, STL-10, CUB-200-2011, synthetic birds
    ``models``       backbones with a bias-free head; the GAP + linear split; forward hooks
    ``train``        the KMEx training recipe; load-or-train through ``store``
    ``features``     batched (and cached) pooled embeddings z and logits
    ``_checks``      the argument checks shared by the public entry points (clear errors)
The paper
    ``sem``          Theorem 1: classifier columns as prototypes, per-pixel evidence maps
    ``kmex``         ``KMExClassifier``, class-wise k-means prototypes (scikit-learn estimator)
    ``metrics``      Table 1 alignment cosines, accuracies
    ``kmeans``       a chunked torch k-means, checked against scikit-learn
    ``blocks``       block sets (B4, B34, B234) and the composite features of eq. 7-8
    ``maps``         explanation maps (eq. 9) and their prediction (eq. 10); ``maps_cache``
    ``cam``          eq. 11 attribution, its segment-wise propagation, Grad-CAM through Captum
    ``patches``      representative training patches of the prototypes
    ``part_scores``  how well segments follow ground-truth parts (NMI, ARI, purity)
    ``protopnet``    the ProtoPNet baseline: model, losses, stages, push, analysis
Reproduction
    ``paper``        the paper's Tables 1 and 2 and settings, as data
    ``maps_eval``    Table 2's B4 / B234 rows for a backbone (fitted maps, cached)
    ``reproduce``    the protocol per (dataset, seed), persisted and resumable; tables; a CLI
    ``paper_figures`` Figures 1 and 2 on the paper's data when present, else the best at hand
Figures
    ``viz``, ``viz_maps``, ``widgets`` (ipywidgets explorer)
"""

__version__ = "0.1.0"
