import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from protolib.core.features import embed
from protolib.core.inference import evaluating, map_batches, model_device, run_device
from protolib.method.explain.maps import ExplanationMaps
from tiny_nets import TinyImages, TinyNet

CPU = torch.device("cpu")


def test_outputs_and_labels_in_dataset_order_across_a_ragged_last_batch():
    x = torch.arange(7 * 2, dtype=torch.float32).reshape(7, 2)
    y = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    sizes = []

    def fn(b):
        sizes.append(len(b))
        return b.sum(1) * 2

    out, labels = map_batches(fn, TensorDataset(x, y), 3, CPU)
    assert sizes == [3, 3, 1]
    assert torch.equal(out, x.sum(1) * 2) and torch.equal(labels, y)


def test_tuple_outputs_are_concatenated_each_and_no_gradient_is_recorded():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    w = torch.randn(3, 2, requires_grad=True)
    (a, b), labels = map_batches(lambda t: (t @ w, t.mean(1)), TensorDataset(x, torch.zeros(5)), 2, CPU)
    assert a.shape == (5, 2) and not a.requires_grad
    torch.testing.assert_close(a, (x @ w).detach(), rtol=0, atol=1e-6)
    assert torch.equal(b, x.mean(1)) and labels.shape == (5,)


def test_empty_dataset_is_refused():
    with pytest.raises(ValueError, match="dataset is empty"):
        map_batches(lambda t: t, TensorDataset(torch.zeros(0, 2), torch.zeros(0)), 4, CPU)


def _modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_evaluating_gives_every_module_its_mode_back_even_after_an_error():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout()).train()
    net[1].eval()                                        # a frozen part of a model in training
    before = _modes(net)
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating(net):
            assert not any(_modes(net))
            raise RuntimeError("inside")
    assert _modes(net) == before == [True, True, False, True]


def test_run_device_is_the_models_own_and_another_is_refused():
    net = nn.Linear(2, 2)
    assert model_device(net) == CPU == run_device(net) == run_device(net, "cpu")
    assert model_device(nn.ReLU()) == CPU == run_device(nn.ReLU())    # no weights: the CPU, or
    assert run_device(nn.ReLU(), "meta") == torch.device("meta")       # wherever it is asked to run
    assert model_device(nn.BatchNorm1d(2, affine=False)) == CPU        # buffers only
    with pytest.raises(ValueError, match=r"weights are on cpu, not on meta.*model.to\('meta'\)"):
        run_device(net, "meta")
    assert net.weight.device == CPU


def test_embedding_and_explaining_leave_the_callers_model_as_it_was():
    net, ds = TinyNet().train(), TinyImages()
    net.layer4.eval()
    before, weights = _modes(net), [p.data_ptr() for p in net.parameters()]
    e = embed(net, ds, batch_size=4, progress=False)
    ex = ExplanationMaps(net, "B4", k_per_class=2, progress=False).fit(ds)
    ex.explain(ds.images)
    assert _modes(net) == before and [p.data_ptr() for p in net.parameters()] == weights
    torch.testing.assert_close(e.logits, net.eval()(ds.images), rtol=0, atol=1e-6)  # computed in eval mode
    with pytest.raises(ValueError, match="not on meta"):
        embed(net, ds, device="meta", progress=False)
    with pytest.raises(ValueError, match="not on meta"):
        ExplanationMaps(net, "B4", k_per_class=2, device="meta", progress=False).fit(ds)
    assert model_device(net) == CPU


def test_the_modules_docstring_examples_run():
    import doctest

    import protolib.core.inference

    result = doctest.testmod(protolib.core.inference)
    assert result.attempted >= 4 and result.failed == 0
