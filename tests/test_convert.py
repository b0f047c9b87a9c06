import numpy as np
import torch
from torch.utils.data import TensorDataset

from protolib.core.convert import dataset_image, to_numpy


def test_to_numpy_of_a_tensor_with_gradient_and_of_a_list():
    t = torch.tensor([1.5, -2.0], requires_grad=True)
    a = to_numpy(t * 2)
    assert isinstance(a, np.ndarray) and a.tolist() == [3.0, -4.0]
    assert to_numpy([1, 2, 3]).tolist() == [1, 2, 3]


class Normalised(TensorDataset):
    def denormalize(self, x):
        return x * 0.5 + 0.5


def test_dataset_image_denormalises_only_where_the_dataset_can():
    x = torch.tensor([[[[-1.0, 1.0]]]]).expand(2, 3, 1, 2)
    y = torch.zeros(2)
    assert torch.equal(dataset_image(Normalised(x, y), torch.tensor(1)), torch.tensor([[[0.0, 1.0]]]).expand(3, 1, 2))
    assert torch.equal(dataset_image(TensorDataset(x, y), 0), x[0])
