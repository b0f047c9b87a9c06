"""The four steps of one (dataset, seed) of the paper's protocol, and the inputs they share.

``cnn``        load-or-train the backbone (:func:`protolib.core.train.load_or_train`, the profile's
               epochs); CNN accuracy (Table 2) and classifier-column cosines (Table 1);
``kmex``       KMEx with K/C = 1 and K/C = 5 (the tables' rows) on the pooled embeddings;
``maps``       B4 and B234 explanation maps with the profile's K/C (:mod:`protolib.reproduce.table2_maps`);
``protopnet``  ProtoPNet (:func:`protolib.baselines.protopnet.load_or_train`), accuracies and cosines.

Each step takes the :class:`RunArtefacts` of its (dataset, seed) and returns (metrics, info):
the cells it fills (:func:`protolib.reproduce.records.result`; Table 2's accuracies, fractions in the
library, become percent in :func:`protolib.reproduce.records.accuracy_result`) and what the provenance adds.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable

import torch

from protolib.baselines import protopnet
from protolib.core import config, features, train
from protolib.core.run import Run
from protolib.method import theorem1
from protolib.method.kmex import KMExClassifier
from protolib.method.metrics import alignment_cosines
from protolib.reproduce import paper, table2_maps
from protolib.reproduce.keys import Settings
from protolib.reproduce.records import accuracy_result, result
from protolib.reproduce.tables import TABLE2_ROWS


class RunArtefacts:
    """What the steps of one :class:`protolib.core.run.Run` share, each made on first use and kept: the
    trained backbone, the data's splits and the pooled embeddings of each split."""

    def __init__(self, run: Run, settings: Settings, progress: bool = True):
        if not isinstance(run, Run):
            raise TypeError(f"run must be a protolib.core.run.Run, got {type(run).__name__}")
        self.run, self.settings, self.progress = run, settings, progress
        self.dataset, self.seed, self.profile, self.device = run.dataset, run.seed, run.profile, run.device
        self._made: dict = {}

    @classmethod
    def of(cls, dataset: str, seed: int = 0, profile: str | config.Profile | None = None, device=None,
           progress: bool = True) -> "RunArtefacts":
        """The artefacts of ``dataset`` and ``seed`` under ``profile`` with the profile's
        :class:`~protolib.reproduce.keys.Settings`: what a chapter explains, the reproduction's own."""
        run = Run.resolve(dataset, profile, seed, device)
        return cls(run, Settings.for_profile(run.profile), progress)

    @property
    def classifier_prototypes(self) -> torch.Tensor:
        """The backbone's classifier columns (C, D), float64 on the CPU (Theorem 1's prototypes)."""
        return self._get("C", lambda: theorem1.classifier_prototypes(self.trained.model).cpu().double())

    def _get(self, name: str, make: Callable):
        if name not in self._made:
            self._made[name] = make()
        return self._made[name]

    @property
    def trained(self) -> train.TrainResult:
        """The backbone of this (dataset, seed), from the cache or trained now."""
        return self._get("trained", lambda: train.load_or_train(self.run, progress=self.progress))

    def split(self, name: str):
        """The ``name`` split of the dataset (evaluation transforms)."""
        return self._get(f"set-{name}", lambda: self.run.load(name))

    def embeddings(self, split: str) -> features.Embeddings:
        """The backbone's pooled embeddings and logits of a split (cached)."""
        return self._get(f"emb-{split}", lambda: features.embed_cached(self.trained, self.run, split,
                                                                       progress=self.progress))


def step_cnn(art: RunArtefacts) -> tuple[list[dict], dict]:
    """CNN rows: test-split cosines of the classifier columns, train / test accuracy of the head."""
    tr, te = art.embeddings("train"), art.embeddings("test")
    C = art.classifier_prototypes
    cos = alignment_cosines(C, torch.arange(len(C)), te.z, te.labels)
    meta = art.trained.meta
    info = {"arch": meta["arch"], "pretrained": meta["pretrained"], "epochs": meta["recipe"]["epochs"],
            "train_seconds": meta.get("train_seconds"), "checkpoint": art.trained.path.name}
    return [result(1, "CNN", "class", cos.class_mean), result(1, "CNN", "out", cos.out_mean),
            accuracy_result("CNN", "train", tr.accuracy()), accuracy_result("CNN", "test", te.accuracy())], info


def step_kmex(art: RunArtefacts) -> tuple[list[dict], dict]:
    """KMEx with K/C = 1 and K/C = 5 on the pooled embeddings (float64), seeded by the run's seed."""
    tr, te = art.embeddings("train"), art.embeddings("test")
    z_tr, y_tr = tr.z.double().numpy(), tr.labels.numpy()
    z_te, y_te = te.z.double().numpy(), te.labels.numpy()
    out = []
    for k in (1, paper.KMEX_TABLE_K):
        clf = KMExClassifier(k, n_init=art.settings.kmex_n_init, random_state=art.seed).fit(z_tr, y_tr)
        cos = alignment_cosines(clf.prototypes_, clf.prototype_labels_, te.z, te.labels)
        row = f"KMEx K/C={k}"
        out += [result(1, row, "class", cos.class_mean), result(1, row, "out", cos.out_mean)]
        if row in TABLE2_ROWS:
            out += [accuracy_result(row, "train", float((clf.predict(z_tr) == y_tr).mean())),
                    accuracy_result(row, "test", float((clf.predict(z_te) == y_te).mean()))]
    return out, {"k_per_class": [1, paper.KMEX_TABLE_K], "n_init": art.settings.kmex_n_init}


def step_maps(art: RunArtefacts) -> tuple[list[dict], dict]:
    """Ours B4 / B234: eq. 10 accuracy of the explanation maps (profile's K/C)."""
    k = art.run.k_per_class
    s = art.settings
    explainers, cached = table2_maps.fit_maps(art.trained, art.split("train"), k, s.images_per_class, art.seed,
                                              progress=art.progress, content=art.run.fingerprints["train"])
    acc = table2_maps.map_accuracies(explainers, art.split("train"), art.split("test"), s.eval_train)
    out = [accuracy_result(f"Ours {n}", split, acc[(n, split)]) for n in ("B4", "B234") for split in ("train", "test")]
    return out, {"k_per_class": k, "images_per_class": s.images_per_class, "eval_train": s.eval_train,
                 "maps_from_cache": cached}


def step_protopnet(art: RunArtefacts) -> tuple[list[dict], dict]:
    """ProtoPNet (the profile's recipe): train / test accuracy, mean-latent cosines on the test split."""
    recipe = protopnet.recipe_for(art.profile, art.dataset, **art.settings.protopnet)
    run = protopnet.load_or_train(art.run, recipe=recipe, init=art.settings.protopnet_init, progress=art.progress)
    _, push_set, test_set = protopnet.datasets_for(art.run)
    bs = recipe.test_batch_size
    ev_tr, ev_te = (protopnet.evaluate(run.model, ds, bs, art.device) for ds in (push_set, test_set))
    # exact ratios of counts, so that the cells are 100 * correct / n to the last bit, as recorded
    acc_tr, acc_te = Fraction(ev_tr.correct, ev_tr.n), Fraction(ev_te.correct, ev_te.n)
    cos = protopnet.alignment_cosines(run.model, test_set, mode="mean", batch_size=bs, device=art.device)
    seconds = sum(r.seconds for r in run.state.results.values() if isinstance(r, protopnet.StageResult))
    return ([result(1, "ProtoPNet", "class", cos.class_), result(1, "ProtoPNet", "out", cos.out),
             accuracy_result("ProtoPNet", "train", acc_tr), accuracy_result("ProtoPNet", "test", acc_te)],
            {"k_per_class": recipe.k_per_class, "recipe": recipe.key_fields(), "init": run.key["init"],
             "stage_seconds": seconds})


STEP_FUNCTIONS: dict[str, Callable[[RunArtefacts], tuple[list[dict], dict]]] = {
    "cnn": step_cnn, "kmex": step_kmex, "maps": step_maps, "protopnet": step_protopnet}


__all__ = ["RunArtefacts", "step_cnn", "step_kmex", "step_maps", "step_protopnet", "STEP_FUNCTIONS"]
