"""umap-learn with its numba kernels kept on disk, so that a new process does not compile them again.

umap compiles its numba kernels (nearest neighbours, fuzzy simplicial set, layout) the first time
they run in a process: about 9 s on our 2-core CPU, paid again by every chapter, test and figure
script that draws a UMAP. umap leaves numba's on-disk cache off for all but one kernel;
:func:`load_umap` turns it on (numba's ``Dispatcher.enable_caching``) for the kernels of umap and
of pynndescent. The first process compiles and writes them beside umap's code (or under
``$NUMBA_CACHE_DIR``); later processes load them: a first fit of 300 points took 0.5 s instead of
9.2 s. Numba keys each cached kernel by its source file, the numba version and the CPU, so a new
umap or another machine compiles again. The compiled code is the same, so are the coordinates.
"""

from __future__ import annotations

import sys
from types import ModuleType

from protolib.core.extras import require

KERNEL_PACKAGES = ("umap", "pynndescent")


def load_umap(purpose: str = "the prototype UMAP") -> ModuleType:
    """``import umap`` (a clear error naming the extra when it is missing), its kernels cached on disk."""
    umap = require("umap", purpose)
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in KERNEL_PACKAGES:
            continue
        for kernel in list(vars(module).values()):
            if isinstance(kernel, CPUDispatcher) and isinstance(kernel._cache, NullCache):
                kernel.enable_caching()
    return umap


__all__ = ["load_umap"]
