"""A chapter's first step: the trained backbone of a dataset, its two splits, and how to say what it is.

Every chapter that explains a backbone starts the same way (load it from the cache or train it,
load the train and test splits, print which model and data the numbers below come from); this
is that step once, so every chapter prints the same description.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.utils.data import Dataset

from protolib.core import train
from protolib.core.run import Run, as_run


@dataclass
class Backbone:
    """The trained CNN of ``dataset`` (``trained``: :class:`protolib.core.train.TrainResult`) with its
    train and test splits (evaluation transforms)."""

    dataset: str
    trained: train.TrainResult
    train_set: Dataset
    test_set: Dataset

    @property
    def model(self) -> nn.Module:
        return self.trained.model

    @property
    def meta(self) -> dict:
        return self.trained.meta

    def describe(self) -> str:
        """Three lines: both splits' titles, then architecture, start, profile, seed, epochs, test
        accuracy and where the weights came from."""
        m = self.meta
        start = "ImageNet" if m["pretrained"] else "random init"
        origin = "loaded from the cache" if self.trained.from_cache else "trained now"
        return (f"train data : {self.train_set.title}\n"
                f"test data  : {self.test_set.title}\n"
                f"backbone   : {m['arch']} ({start}), profile {m['profile']}, seed {m['seed']}, "
                f"{m['recipe']['epochs']} epochs, CNN test accuracy {m['test_accuracy']:.1f} % "
                f"({origin}; trained in {m['train_seconds']:.0f} s on {m['device']})")


def load(dataset: str | Run, seed: int | None = None, **options) -> Backbone:
    """The backbone of a run (a :class:`protolib.core.run.Run`, or a dataset name with ``seed``, default
    0, and the ``profile`` and ``device`` in ``options``) from :func:`protolib.core.train.load_or_train`
    (the other ``options`` go to it) and the dataset's train and test splits."""
    run = as_run(dataset, options.pop("profile", None), seed, options.pop("device", None))
    trained = train.load_or_train(run, **options)
    return Backbone(run.dataset, trained, run.load("train"), run.load("test"))


__all__ = ["Backbone", "load"]
