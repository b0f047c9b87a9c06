"""A tiny stand-in for ``birds224`` (2 classes, 64 px, 8 train / 6 test images per class), registered
as ``birds224-tiny`` so that the record command can be run end to end in seconds (tests)."""

from __future__ import annotations

from protolib.core import data
from protolib.core.data import birds224

NAME = "birds224-tiny"

if NAME not in data.REGISTRY:
    data.register(birds224.make_spec(NAME, num_classes=2, image_size=64, n_train=8, n_test=6))
