"""protolib: k-means-based post-hoc self-explanation of CNNs.

Modules: ``config`` (profiles, paths, device), ``data`` (dataset registry), ``models``
(backbones, GAP + linear split, hooks), ``train`` (recipe and checkpoint cache), ``features``
(batched embeddings), ``sem`` (Theorem 1).
"""

__version__ = "0.1.0"
