import pytest
import torch
from torch.utils.data import TensorDataset

from protolib.core.inference import map_batches

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
