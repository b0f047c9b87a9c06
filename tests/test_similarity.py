import math

import numpy as np
import torch

from protolib.method.similarity import EPS, log_similarity


def test_numpy_and_torch_give_the_hand_formula_bit_for_bit():
    d = np.array([0.0, 1e-4, 0.5, 3.0, 1e4])
    np.testing.assert_array_equal(log_similarity(d), np.log((d + 1) / (d + 1e-4)))
    t = torch.tensor(d, dtype=torch.float32)
    out = log_similarity(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert torch.equal(out, torch.log((t + 1) / (t + 1e-4)))
    assert EPS == 1e-4 and log_similarity(0.0) == math.log(1e4)          # the largest value, at d = 0
    assert log_similarity(np.array([1.0]), eps=1.0)[0] == 0.0              # eps = 1: zero everywhere


def test_torch_version_is_differentiable_with_the_derivative_by_hand():
    d = torch.tensor([0.0, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    log_similarity(d).sum().backward()
    expected = 1 / (d.detach() + 1) - 1 / (d.detach() + EPS)              # d/dd log((d+1)/(d+eps))
    torch.testing.assert_close(d.grad, expected, rtol=1e-12, atol=0)
    assert (d.grad < 0).all()                                              # decreasing in d
