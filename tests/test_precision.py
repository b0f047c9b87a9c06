"""Training's fast path (protolib.core.precision): how it is chosen, its fallback, and what it keeps.

bfloat16 changes what a training learns (one more draw of training noise), so nothing here
compares a bfloat16 training with a float32 one; what must hold is that the path is chosen as
documented, falls back to float32 with one line and no crash, stays deterministic, hands back a
float32 NCHW model, and keys the cache apart from float32 checkpoints.
"""

import pytest
import torch
from torch.utils.data import Subset

from protolib.core import data, precision, train
from protolib.core.models import build_model


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with native bfloat16, whatever this one has."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)


def test_auto_takes_bfloat16_channels_last_on_a_cpu_that_has_it(bf16_cpu):
    path = precision.for_training("cpu")
    assert path.dtype == torch.bfloat16 and path.channels_last and path.name == "bfloat16 channels-last"
    x = path.batch(torch.zeros(2, 3, 4, 5))
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert path.batch(torch.zeros(2, 3)).is_contiguous()            # features (2-D) pass unchanged
    with path.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_auto_keeps_small_images_in_float32_unless_bfloat16_is_asked_for(bf16_cpu, monkeypatch):
    small, edge = precision.MIN_IMAGE_SIZE - 1, precision.MIN_IMAGE_SIZE
    assert precision.for_training("cpu", image_size=small).name == "float32"
    assert precision.for_training("cpu", image_size=0).name == "float32"     # ProtoPNet's reused features
    assert precision.for_training("cpu", image_size=edge).name == "bfloat16 channels-last"
    monkeypatch.setenv(precision.PRECISION_ENV, "bfloat16")
    assert precision.for_training("cpu", image_size=small).name == "bfloat16 channels-last"


def test_image_size_reads_the_smaller_side_of_the_first_image():
    assert precision.image_size([(torch.zeros(3, 64, 80), 0)]) == 64
    assert precision.image_size([(torch.zeros(512), 0)]) is None          # not an image


@pytest.mark.parametrize("how", ["env", "recipe"])
def test_float32_when_asked(bf16_cpu, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv(precision.PRECISION_ENV, "float32")
    path = precision.for_training("cpu", amp=how != "recipe")
    assert path.dtype is None and not path.channels_last and path.name == "float32"
    with path.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("wanted", ["auto", "bfloat16"])
def test_a_cpu_without_bfloat16_trains_in_float32_and_says_so_once(monkeypatch, capsys, wanted):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(precision, "_said", set())
    monkeypatch.setenv(precision.PRECISION_ENV, wanted)
    first, second = precision.for_training("cpu"), precision.for_training("cpu")
    assert first.name == second.name == "float32"
    err = capsys.readouterr().err
    assert err.count("no native bfloat16") == 1 and "training in float32" in err
    assert ("PROTOLIB_TRAIN_PRECISION=bfloat16" in err) == (wanted == "bfloat16")


def test_a_wrong_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(precision.PRECISION_ENV, "fp8")
    with pytest.raises(ValueError, match=r"PROTOLIB_TRAIN_PRECISION must be one of auto, float32, bfloat16; got 'fp8'"):
        precision.for_training("cpu")


def test_cpu_has_bf16_is_false_when_torch_cannot_tell(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert precision.cpu_has_bf16() is False


def _fit(seed: int) -> dict:
    torch.manual_seed(123)
    model = build_model("resnet18", 10)
    train.fit(model, Subset(data.load("digits", "train"), range(64)), train.Recipe(epochs=1, batch_size=32),
              seed=seed, progress=False)
    assert all(p.is_contiguous() for p in model.parameters())      # handed back in NCHW
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.skipif(not precision.cpu_has_bf16(), reason="this CPU has no native bfloat16")
def test_the_bfloat16_path_is_deterministic_and_learns_other_weights_than_float32(monkeypatch):
    monkeypatch.setenv(precision.PRECISION_ENV, "bfloat16")    # the digits are 32 px: "auto" keeps float32
    a, b = _fit(0), _fit(0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float32 for v in a.values() if v.is_floating_point())
    monkeypatch.setenv(precision.PRECISION_ENV, "float32")
    c = _fit(0)
    torch.manual_seed(123)
    init = build_model("resnet18", 10).state_dict()
    keys = [k for k in a if a[k].is_floating_point() and "running" not in k]     # the learnt parameters
    step_bf16, step_f32 = (torch.cat([(w[k] - init[k]).flatten() for k in keys]) for w in (a, c))
    cosine = torch.nn.functional.cosine_similarity(step_bf16, step_f32, dim=0).item()
    assert 0.7 < cosine < 1, cosine   # the same two SGD steps, rounded otherwise (measured: 0.88)


def test_the_path_is_part_of_the_checkpoint_key(monkeypatch, tmp_path):
    paths = {}
    for name in ("float32", "bfloat16"):
        monkeypatch.setenv(precision.PRECISION_ENV, name)
        monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
        calls = []
        monkeypatch.setattr(train, "fit", lambda model, *a, **k: calls.append(1) or model.eval())
        res = train.load_or_train("digits", profile="quick", seed=0, device="cpu", progress=False,
                                  recipe=train.Recipe(epochs=1), cache_dir=tmp_path)
        paths[name] = res.path
        assert calls == [1] and res.meta["precision"] == ("float32" if name == "float32" else "bfloat16 channels-last")
    assert paths["float32"] != paths["bfloat16"]
