"""Loaders against tiny files written in each dataset's real format, and the real MNIST test split."""

import hashlib

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, make_mnist, write_idx, write_stl10
from PIL import Image

from protolib.core import data
from protolib.core.data.mnist import read_idx


def test_unknown_dataset_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'.*digits.*mnist"):
        data.load("cifar10")


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="split must be"):
        data.load("digits", "validation")


def test_digits_real_and_seeded():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert len(train) + len(test) == 1797 and len(test) == 360
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= y < 10
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey repeated to RGB
    again = data.load("digits", "train")
    assert torch.equal(again.targets, train.targets) and torch.equal(again.images, train.images)
    other = data.load("digits", "train", seed=1)
    assert not torch.equal(other.targets, train.targets)
    assert "seed 0" in train.title and "train part" in train.title


def test_idx_reader_roundtrip_and_header_checks(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (True, False):
        path = write_idx(tmp_path / f"a{gz}", arr, gz=gz)
        assert np.array_equal(read_idx(path), arr)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09" + b"\x00" * 3)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)


def test_mnist_full_files_use_official_splits(tmp_path):
    made = make_mnist(tmp_path, n_test=20, n_train=30)
    train = data.load("mnist", "train", root=tmp_path)
    test = data.load("mnist", "test", root=tmp_path)
    assert (len(train), len(test)) == (30, 20)
    assert "official train split" in train.title
    assert train.targets.tolist() == made["train"][1].tolist()
    x, _ = test[0]
    assert x.shape == (3, 32, 32)


def test_mnist_test_files_only_gives_a_named_seeded_split(tmp_path):
    make_mnist(tmp_path, n_test=2500)
    train = data.load("mnist", "train", root=tmp_path)
    test = data.load("mnist", "test", root=tmp_path)
    assert (len(train), len(test)) == (500, 2000)
    assert "TEST split only" in train.title and "seed 0" in train.title
    both = torch.cat([train.images, test.images])
    assert len({bytes(im.numpy().tobytes()) for im in both}) == 2500  # disjoint, complete


def test_missing_mnist_is_a_clear_error(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("mnist", root=tmp_path)
    message = str(info.value)
    assert "'mnist'" in message and str(tmp_path / "MNIST" / "raw") in message and "t10k" in message
    assert not data.is_available("mnist", root=tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").exists(), reason="shared MNIST test split absent")
def test_real_mnist_test_split():
    raw = SHARED_DATA / "MNIST" / "raw"
    digest = hashlib.md5((raw / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert digest == "ec29112dd5afa0611ce80d1b7f02629c"  # torchvision's checksum of the official file
    train = data.load("mnist", "train", root=SHARED_DATA)
    test = data.load("mnist", "test", root=SHARED_DATA)
    assert (len(train), len(test)) == (8000, 2000)
    counts = torch.bincount(torch.cat([train.targets, test.targets]), minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # official test counts


def test_stl10_binary_format(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 200, size=(4, 3, 96, 96), dtype=np.uint8)
    images[2, 0, 5, 70] = 255  # a marker at row 5, column 70 of the red channel
    labels = np.array([0, 3, 9, 3])
    write_stl10(tmp_path, "train", images, labels)
    (tmp_path / "stl10_binary" / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    ds = data.load("stl10", "train", root=tmp_path)
    assert len(ds) == 4 and ds.targets.tolist() == [0, 3, 9, 3] and ds.classes[9] == "c9"
    assert torch.equal(ds.images, torch.from_numpy(images))
    x, y = ds[2]
    assert y == 9 and x.shape == (3, 96, 96)
    assert ds.denormalize(x)[0, 5, 70].item() == pytest.approx(1.0, abs=1e-5)
    aug = data.load("stl10", "train", root=tmp_path, augment=True)
    assert aug[0][0].shape == (3, 96, 96)
    with pytest.raises(data.DatasetNotFoundError, match="stl10_binary"):
        data.load("stl10", "test", root=tmp_path)  # only the train files were written


def _write_cub(root):
    folder = root / "CUB_200_2011"
    (folder / "parts").mkdir(parents=True)
    rows, labels, split, boxes, locs = [], [], [], [], []
    for i in range(1, 7):
        cls = 1 + (i - 1) % 2
        rel = f"{cls:03d}.Bird_{cls}/img_{i}.jpg"
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 80), color=(40 * i, 20, 200)).save(folder / "images" / rel)
        rows.append(f"{i} {rel}")
        labels.append(f"{i} {cls}")
        split.append(f"{i} {1 if i <= 4 else 0}")
        boxes.append(f"{i} 10.0 20.0 40.0 30.0")
        locs += [f"{i} {p} {p * 2}.0 {p * 3}.0 {p % 2}" for p in range(1, 16)]
    for name, lines in {"images.txt": rows, "image_class_labels.txt": labels, "train_test_split.txt": split,
                        "bounding_boxes.txt": boxes, "classes.txt": ["1 001.Bird_1", "2 002.Bird_2"]}.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    (folder / "parts" / "part_locs.txt").write_text("\n".join(locs) + "\n")
    (folder / "parts" / "parts.txt").write_text("\n".join(f"{p} part {p}" for p in range(1, 16)) + "\n")


def test_cub_folder_layout_crop_and_parts(tmp_path):
    _write_cub(tmp_path)
    train = data.load("cub200", "train", root=tmp_path)
    test = data.load("cub200", "test", root=tmp_path)
    assert (len(train), len(test)) == (4, 2)
    assert train.targets.tolist() == [0, 1, 0, 1] and train.classes[:2] == ["001.Bird_1", "002.Bird_2"]
    assert train.load_image(0).size == (40, 30)  # bounding-box crop
    full = data.load("cub200", "train", root=tmp_path, crop=False)
    assert full.load_image(0).size == (100, 80)
    x, y = train[1]
    assert x.shape == (3, 224, 224) and y == 1
    locs = test.part_locations(0)  # image id 5
    assert locs.shape == (15, 3) and locs[2].tolist() == [6.0, 9.0, 1.0]
    assert train.part_names()[0] == "part 1"
    assert data.load("cub200", "train", root=tmp_path, augment=True)[0][0].shape == (3, 224, 224)


def test_missing_cub_says_where_and_how(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match=r"(?s)'cub200'.*CUB_200_2011.*CUB_200_2011.tgz"):
        data.load("cub200", root=tmp_path)
