"""Explaining the encoder: multi-depth explanation maps and their importance (paper sec. 3.3-3.4).

The modules, in the order the paper builds the method:

``blocks``          block sets (B4, B34, B234: the model's last stages) and the composite pixel features of eq. 6-8
``kmeans``          a chunked torch k-means (k-means++ and Lloyd), checked against scikit-learn
``kmeans_ops``      the kernels of its passes: row norms, centre sums, the GEMM's padding
``kmeans_backends`` one call for the exact, faiss and streaming k-means
``kmeans_dask``     the same Lloyd iterations on a Dask cluster
``maps``            ``ExplanationMaps``: class-wise pixel prototypes (fit), eq. 9 maps, eq. 10 scores
``maps_result``     ``ExplanationMap``, the explanation of a batch, and the eq. 10 class scores
``maps_fit``        the per-class fitting steps of ``ExplanationMaps`` (in memory or streamed)
``maps_multi``      several block sets of one model at once (``fit_all``, ``explain_all``, ...)
``maps_cache``      fitted explainers cached by model weights, data and settings
``cam``             eq. 11 importance and its gradient-free propagation to shallower maps; Grad-CAM
``patches``         the training patch nearest to each prototype
``part_scores``     how well map segments follow ground-truth parts (NMI, ARI, purity)
``viz_maps``        Figure 1 and the map figures
``widgets``         an ipywidgets explorer of the maps

Import the modules themselves (``from protolib.method.explain import maps, cam``); this package file
imports nothing, so that importing one module does not load matplotlib or ipywidgets.
"""
