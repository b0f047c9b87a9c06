"""Bad inputs across the public API: each is refused with the right exception and a message that
names the problem (never a silent wrong answer, never an error from deep inside torch).

Every case is a row of ``CASES``: (id, call, exception type, regular expression the message must
match). ``python tests/test_bad_inputs.py`` prints them as a table with the messages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_idx
from sklearn.exceptions import NotFittedError
from tiny_nets import TinyImages, TinyNet
from torch.utils.data import Dataset

from protolib.core import config, data, features, train
from protolib.core.data.mnist import read_idx
from protolib.core.hooks import capture
from protolib.core.models import build_model
from protolib.method import theorem1
from protolib.method.explain import cam, maps, maps_multi
from protolib.method.kmex import KMExClassifier

X2 = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]])
Y2 = np.array([0, 0, 1, 1])


class Images(Dataset):
    """In-memory images with ``targets`` as given (any type, even strings); an item's label is
    the target when it is an integer, else 0, so only the checks on ``targets`` can catch it."""

    def __init__(self, images, targets):
        self.images, self.targets = images, targets

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i]) if isinstance(self.targets[i], (int, np.integer)) else 0


class NoTargets(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.zeros(2, 8, 8), 0


_FITTED = {}


def fitted() -> maps.ExplanationMaps:
    """A B2 explainer of the tiny network (8 x 8 images, 2 classes), fitted once."""
    if "ex" not in _FITTED:
        _FITTED["ex"] = maps.ExplanationMaps(TinyNet(), blocks=["layer2"], k_per_class=2, progress=False,
                                             device="cpu").fit(TinyImages())
    return _FITTED["ex"]


def fitted_pair() -> dict:
    """B4 and B2 of one tiny network, for importance maps."""
    if "pair" not in _FITTED:
        net = TinyNet()
        exs = {k: maps.ExplanationMaps(net, blocks=[layer], k_per_class=1, progress=False, device="cpu")
               for k, layer in (("B4", "layer4"), ("B2", "layer2"))}
        _FITTED["pair"] = maps_multi.fit_all(exs, TinyImages())
    return _FITTED["pair"]


def images(n=2, value=None, size=8):
    x = TinyImages().images[:n].clone() if size == 8 else torch.zeros(n, 2, size, size)
    if value is not None:
        x[1, 0, 3, 4] = value
    return x


def with_bad_image(value):
    ds = TinyImages()
    ds.images[2, 1, 0, 0] = value
    return ds


def changed_weights():
    ex = maps.ExplanationMaps(TinyNet(), blocks=["layer2"], k_per_class=2, progress=False, device="cpu").fit(TinyImages())
    with torch.no_grad():
        ex.model.layer4[1].weight.mul_(2)  # fine-tuned after the fit
    ex.explain(images())


def restored_into_another_model():
    state = fitted().state_dict()
    other = TinyNet()
    with torch.no_grad():
        other.fc.weight.add_(1.0)  # same widths, other weights
    ex = maps.ExplanationMaps(other, blocks=["layer2"], k_per_class=2, progress=False,
                              device="cpu").load_state_dict(state)
    ex.explain(images())


def truncated_gzip(tmp: Path):
    path = write_idx(tmp / "t10k-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    read_idx(path)


def explainer(**kw):
    return maps.ExplanationMaps(TinyNet(), **{"blocks": ["layer2"], "progress": False, "device": "cpu", **kw})


def device_env(value):
    def call(monkeypatch):
        monkeypatch.setenv("PROTOLIB_DEVICE", value)
        config.get_device()
    return call


# (id, call, exception, message pattern). A call takes no argument, or ``tmp_path`` /
# ``monkeypatch`` when its first parameter is named so.
CASES = [
    # KMExClassifier (scikit-learn conventions: InvalidParameterError is a ValueError)
    ("kmex fractional K/C", lambda: KMExClassifier(2.5).fit(X2, Y2), ValueError,
     r"'k_per_class' parameter.*int in the range \[1, inf\).*2\.5"),
    ("kmex K/C = 0", lambda: KMExClassifier(0).fit(X2, Y2), ValueError, "k_per_class"),
    ("kmex unknown init", lambda: KMExClassifier(init="kmeans").fit(X2, Y2), ValueError, "'init' parameter"),
    ("kmex negative tol", lambda: KMExClassifier(tol=-1.0).fit(X2, Y2), ValueError, "'tol' parameter"),
    ("kmex NaN in X", lambda: KMExClassifier(1).fit(np.where(X2 == 5.0, np.nan, X2), Y2), ValueError, "NaN"),
    ("kmex no sample", lambda: KMExClassifier(1).fit(np.zeros((0, 2)), []), ValueError, "0 sample"),
    ("kmex y of another length", lambda: KMExClassifier(1).fit(X2, Y2[:3]), ValueError,
     "inconsistent numbers of samples"),
    ("kmex continuous y", lambda: KMExClassifier(1).fit(X2, [0.1, 0.2, 0.3, 0.4]), ValueError, "Unknown label type"),
    ("kmex predict before fit", lambda: KMExClassifier().predict(X2), NotFittedError, "not fitted yet"),
    ("kmex predict with 3 features", lambda: KMExClassifier(1).fit(X2, Y2).predict(np.zeros((1, 3))), ValueError,
     "3 features.*expecting 2"),
    # ExplanationMaps: bad parameters, refused at fit (scikit-learn: __init__ only stores them)
    ("maps unknown block set", lambda: explainer(blocks="B9").fit(TinyImages()), ValueError,
     "'B9': the digits are ResNet stage numbers 1 to 4"),
    ("maps block set deeper than the model", lambda: explainer(blocks="B1234").fit(TinyImages()), ValueError,
     r"'B1234' needs the last 4 stages, but TinyNet has 3: layer2 \(128 x 128\)"),
    ("maps unknown block name", lambda: explainer(blocks=["layer9"]).fit(TinyImages()), ValueError,
     "no module 'layer9'"),
    ("maps empty block list", lambda: explainer(blocks=[]).fit(TinyImages()), ValueError, "non-empty list of layer names"),
    ("maps fractional K/C", lambda: explainer(k_per_class=2.5).fit(TinyImages()), TypeError, "k_per_class must be an integer.*2.5"),
    ("maps K/C = 0", lambda: explainer(k_per_class=0).fit(TinyImages()), ValueError, "k_per_class must be an integer >= 1, got 0"),
    ("maps unknown norm", lambda: explainer(norm="l2").fit(TinyImages()), ValueError, r"norm must be one of \['pixel', 'block'\]"),
    ("maps max_images_per_class=0", lambda: explainer(max_images_per_class=0).fit(TinyImages()), ValueError,
     "max_images_per_class must be an integer >= 1, got 0"),
    ("maps fewer pixels than K/C", lambda: explainer(k_per_class=5, max_pixels_per_class=3).fit(TinyImages()), ValueError,
     "max_pixels_per_class must be an integer >= 5, got 3"),
    ("maps grid size 0", lambda: explainer(size=(0, 4)).fit(TinyImages()), ValueError, r"size must be a positive int or a pair"),
    ("maps batch_size 0", lambda: explainer(batch_size=0).fit(TinyImages()), ValueError, "batch_size must be an integer >= 1"),
    ("maps negative seed", lambda: explainer(random_state=-1).fit(TinyImages()), ValueError, "random_state must be an integer >= 0"),
    ("maps not a model", lambda: maps.ExplanationMaps("resnet18").fit(TinyImages()), TypeError, "model must be a torch.nn.Module, got str"),
    # ExplanationMaps.fit
    ("fit on an empty dataset", lambda: explainer().fit(Images(torch.zeros(0, 2, 8, 8), [])), ValueError,
     "dataset is empty"),
    ("fit on a dataset without targets", lambda: explainer().fit(NoTargets()), TypeError, r"has no \.targets"),
    ("fit on string labels", lambda: explainer().fit(Images(torch.zeros(2, 2, 8, 8), ["cat", "dog"])), TypeError,
     "integer class indices.*map string labels"),
    ("fit on a negative label", lambda: explainer().fit(Images(torch.zeros(2, 2, 8, 8), [0, -1])), ValueError,
     "class indices >= 0, got -1"),
    ("fit with num_classes below the labels", lambda: explainer().fit(TinyImages(), num_classes=1), ValueError,
     "holds class 1, but num_classes=1"),
    ("fit with fractional num_classes", lambda: explainer().fit(TinyImages(), num_classes=2.5), TypeError,
     "num_classes must be an integer"),
    ("fit on a NaN image", lambda: explainer().fit(with_bad_image(float("nan"))), ValueError,
     r"dataset images \[2\] hold NaN or infinite"),
    ("fit_features with a 3-D tensor", lambda: explainer().fit_features([torch.zeros(2, 3, 4)]), ValueError,
     r"per_class\[0\] must be a \(M, D\) tensor"),
    # ExplanationMaps.explain and friends
    ("explain before fit", lambda: explainer().explain(images()), RuntimeError, "not fitted yet"),
    ("explain a NaN image", lambda: fitted().explain(images(value=float("nan"))), ValueError,
     r"NaN or infinite values in 1 of 2 images \(batch indices \[1\]\)"),
    ("explain an inf image", lambda: fitted().explain(images(value=float("inf"))), ValueError,
     r"batch indices \[1\]"),
    ("explain a list", lambda: fitted().explain(list(images())), TypeError, "must be a torch.Tensor.*got list"),
    ("explain one image without batch axis", lambda: fitted().explain(images()[0]), ValueError,
     r"\(B, C, H, W\), got shape \(2, 8, 8\).*unsqueeze"),
    ("explain an empty batch", lambda: fitted().explain(images()[:0]), ValueError, "empty batch"),
    ("explain uint8 images", lambda: fitted().explain(images().to(torch.uint8)), TypeError,
     "floating-point.*torch.uint8"),
    ("explain another image size", lambda: fitted().explain(images(size=16)), ValueError,
     r"16 x 16 images, but the explainer was fitted on 8 x 8 images \(input_size_\)"),
    ("explain after the weights changed", changed_weights, RuntimeError,
     "not the one its prototypes were fitted on"),
    ("prototypes restored into another model", restored_into_another_model, RuntimeError,
     "not the one its prototypes were fitted on"),
    ("explain features of another width", lambda: fitted().explain_features(torch.zeros(1, 5, 8, 8)), ValueError,
     r"h must be composite features \(B, 2, H', W'\)"),
    ("explain a dataset of another size", lambda: fitted().explain_dataset(Images(torch.zeros(2, 2, 16, 16), [0, 1])),
     ValueError, r"16 x 16 images.*input_size_"),
    ("explain a dataset with a NaN image", lambda: fitted().explain_dataset(with_bad_image(float("nan"))), ValueError,
     r"dataset images \[2\]"),
    ("explain_all with no explainer", lambda: maps_multi.explain_all({}, images()), ValueError, "non-empty dict"),
    # importance maps (eq. 11)
    ("importance targets -1", lambda: cam.importance_maps(fitted_pair(), images(), targets=-1), ValueError,
     r"class indices in \[0, 1\], got \[-1\]"),
    ("importance targets out of range", lambda: cam.importance_maps(fitted_pair(), images(), targets=2), ValueError,
     r"\[0, 1\], got \[2\]"),
    ("importance targets of the wrong length", lambda: cam.importance_maps(fitted_pair(), images(),
                                                                           targets=torch.tensor([0, 1, 1])),
     ValueError, r"one per image \(2,\), got shape \(3,\)"),
    ("importance float targets", lambda: cam.importance_maps(fitted_pair(), images(), targets=torch.tensor([0.0, 1.0])),
     TypeError, "targets must hold integer class indices, got dtype torch.float32"),
    ("importance NaN image", lambda: cam.importance_maps(fitted_pair(), images(value=float("nan"))), ValueError,
     r"batch indices \[1\]"),
    ("importance unknown last layer", lambda: cam.importance_maps(fitted_pair(), images(), last_layer="layer5"),
     ValueError, "no module 'layer5'"),
    # models
    ("build_model unknown architecture", lambda: build_model("resnet19"), ValueError,
     "unknown torchvision architecture 'resnet19'"),
    ("build_model zero classes", lambda: build_model("resnet18", 0), ValueError, "num_classes must be an integer >= 1"),
    ("capture an unknown layer", lambda: capture(TinyNet(), ["layer9"]).__enter__(), ValueError, "no module 'layer9'"),
    # config
    ("PROTOLIB_DEVICE=gpu", device_env("gpu"), ValueError, r"\$PROTOLIB_DEVICE='gpu' is not a device"),
    ("device argument cuda:x", lambda: config.get_device("cuda:x"), ValueError, "device='cuda:x' is not a device"),
    # data
    ("gzip file cut in half", truncated_gzip, ValueError, r"t10k-images-idx3-ubyte\.gz could not be read.*damaged"),
    ("unknown dataset", lambda: data.load("cifar10"), ValueError, "unknown dataset 'cifar10'"),
    ("unknown split", lambda: data.load("digits", "val"), ValueError, "split must be 'train' or 'test'"),
    ("fractional split seed", lambda: data.load("digits", "train", seed=0.5), TypeError, "seed must be an integer"),
    ("embed an empty dataset", lambda: features.embed(TinyNet(), Images(torch.zeros(0, 2, 8, 8), []), progress=False),
     ValueError, "dataset is empty"),
    # Theorem 1 (sem)
    ("evidence maps of a NaN image", lambda: theorem1.evidence_maps(TinyNet(), images(value=float("nan"))), ValueError,
     r"batch indices \[1\]"),
    ("theorem 1 check on one unbatched image", lambda: theorem1.theorem1_check(TinyNet(), images()[0]), ValueError,
     "unsqueeze"),
    # training
    ("recipe with 0 epochs", lambda: train.Recipe(epochs=0), ValueError, "epochs must be an integer >= 1, got 0"),
    ("recipe with 2.5 epochs", lambda: train.Recipe(epochs=2.5), TypeError, "epochs must be an integer"),
    ("recipe with a negative learning rate", lambda: train.Recipe(lr=-0.1), ValueError, "lr must be a number > 0"),
    ("train on an empty dataset", lambda: train.fit(TinyNet(), Images(torch.zeros(0, 2, 8, 8), []), train.Recipe(1)),
     ValueError, "train_set is empty"),
    ("train with a dict as recipe", lambda: train.fit(TinyNet(), TinyImages(), {"epochs": 1}), TypeError,
     "recipe must be a protolib.core.train.Recipe, got dict"),
    ("train on string labels", lambda: train.fit(TinyNet(), Images(torch.zeros(2, 2, 8, 8), ["a", "b"]),
                                                 train.Recipe(1)), TypeError, "integer class indices"),
]


def _run(call, tmp_path, monkeypatch):
    params = call.__code__.co_varnames[:call.__code__.co_argcount]
    return call(*[{"tmp": tmp_path, "tmp_path": tmp_path, "monkeypatch": monkeypatch}[p] for p in params])


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_message_that_names_it(call, exc, match, tmp_path, monkeypatch):
    with pytest.raises(exc, match=match):
        _run(call, tmp_path, monkeypatch)


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_asked_for_without_a_gpu(monkeypatch):
    monkeypatch.setenv("PROTOLIB_DEVICE", "cuda")
    with pytest.raises(ValueError, match=r"\$PROTOLIB_DEVICE='cuda' asks for CUDA, but no CUDA GPU"):
        config.get_device()


def test_string_labels_are_fine_for_kmex():
    # scikit-learn's convention: any hashable labels, returned as given
    clf = KMExClassifier(1, n_init=1, random_state=0).fit(X2, ["cat", "cat", "dog", "dog"])
    assert clf.predict([[5.0, 5.5]]).tolist() == ["dog"]
    assert clf.predict_proba([[5.0, 5.5]]).argmax() == 1


def test_valid_inputs_still_explain_and_agree_with_a_clean_batch():
    ex = fitted()
    clean = ex.explain(images())
    # the single image, the batch and the dataset give the same segments: checks change nothing
    torch.testing.assert_close(ex.explain(images()[1:]).segments, clean.segments[1:])
    torch.testing.assert_close(ex.explain_dataset(TinyImages(), indices=[0, 1]).segments, clean.segments)
    imp = cam.importance_maps(fitted_pair(), images(), targets=torch.tensor([1, 0]))
    assert imp.targets.tolist() == [1, 0]
    assert cam.importance_maps(fitted_pair(), images(), targets=1).targets.tolist() == [1, 1]


if __name__ == "__main__":  # the table of the cases and their messages
    import tempfile

    from _pytest.monkeypatch import MonkeyPatch

    print("| bad input | exception | message |\n| --- | --- | --- |")
    for name, call, exc, _ in CASES:
        patch = MonkeyPatch()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                _run(call, Path(tmp), patch)
            msg, kind = "NO ERROR", "-"
        except Exception as err:  # noqa: BLE001 - the table shows whatever comes out
            msg, kind = str(err).replace("\n", " ").replace("|", "/"), type(err).__name__
        finally:
            patch.undo()
        print(f"| {name} | {kind} | {msg[:160]} |")
