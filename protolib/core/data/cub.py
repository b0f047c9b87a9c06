"""CUB-200-2011 from its standard folder layout, with optional bounding-box crop and parts.

Expected under ``<data root>/CUB_200_2011/``: ``images.txt``, ``image_class_labels.txt``,
``train_test_split.txt``, ``bounding_boxes.txt``, ``classes.txt``, ``images/<class>/<file>.jpg``
and, for part evaluation, ``parts/parts.txt`` and ``parts/part_locs.txt``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import v2

from protolib.core.data.base import DatasetNotFoundError, DatasetSpec, LabelledImages

HOW_TO_GET = (
    "download CUB_200_2011.tgz (data.caltech.edu/records/65de6-vp158) and extract it into "
    "<data root>/, so that <data root>/CUB_200_2011/images.txt exists."
)
REQUIRED = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")


def _table(path: Path) -> dict[int, list[str]]:
    """Read a CUB text table: first column an integer id, the rest kept as strings."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            first, *rest = line.split()
            rows[int(first)] = rest
    return rows


class CUB200(LabelledImages):
    """CUB-200-2011 images with labels 0..199; ``crop=True`` cuts each image to its bounding box.

    ``part_locations(i)`` returns the 15 annotated keypoints of item ``i`` as a float tensor
    (15, 3) of (x, y, visible) in the coordinates of the original (uncropped) image.
    """

    def __init__(self, spec: DatasetSpec, root: Path, split: str, augment: bool, crop: bool = True):
        folder = root / "CUB_200_2011"
        if not all((folder / f).is_file() for f in REQUIRED):
            raise DatasetNotFoundError("cub200", folder, HOW_TO_GET)
        paths = _table(folder / "images.txt")
        labels = _table(folder / "image_class_labels.txt")
        is_train = _table(folder / "train_test_split.txt")
        boxes = _table(folder / "bounding_boxes.txt")
        want = "1" if split == "train" else "0"
        self.ids = [i for i in sorted(paths) if is_train[i][0] == want]
        self.folder, self.crop, self.spec, self.split = folder, crop, spec, split
        self.paths = [folder / "images" / paths[i][0] for i in self.ids]
        self.boxes = [tuple(float(v) for v in boxes[i]) for i in self.ids]  # x, y, width, height
        self.targets = torch.tensor([int(labels[i][0]) - 1 for i in self.ids], dtype=torch.long)
        names_file = folder / "classes.txt"
        if names_file.is_file():
            names = _table(names_file)
            self.classes = [names[k][0] for k in sorted(names)]
        else:
            self.classes = [str(c) for c in range(spec.num_classes)]
        size = spec.image_size
        steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize((size, size), antialias=True)]
        if augment:  # ProtoPNet trains on augmented crops; we augment online (flip, small affine)
            steps += [v2.RandomHorizontalFlip(0.5), v2.RandomAffine(degrees=15, shear=10)]
        self.transform = v2.Compose(steps + [v2.Normalize(spec.mean, spec.std)])
        self.title = (
            f"CUB-200-2011 (official {split} split, {'bounding-box crops' if crop else 'full images'}, {size} px)"
        )
        self._parts: dict[int, torch.Tensor] | None = None

    def content_fingerprint(self) -> str:
        """A cheap hash of this split's content: image paths, file sizes, labels, boxes and the crop
        (see :func:`protolib.core.store.fingerprint`); adding, removing or replacing an image changes it."""
        h = hashlib.sha256(f"{self.split}:{self.crop}".encode())
        for path, box, label in zip(self.paths, self.boxes, self.targets.tolist()):
            size = path.stat().st_size if path.is_file() else -1
            h.update(f"{path.relative_to(self.folder)}:{size}:{label}:{box}\n".encode())
        return h.hexdigest()[:16]

    def load_image(self, i: int) -> Image.Image:
        """The PIL image of item ``i``, cropped to its bounding box when ``crop`` is set."""
        img = Image.open(self.paths[i]).convert("RGB")
        if self.crop:
            x, y, w, h = self.boxes[i]
            img = img.crop((int(x), int(y), int(x + w), int(y + h)))
        return img

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.load_image(i)), int(self.targets[i])

    def part_locations(self, i: int) -> torch.Tensor:
        """(15, 3) tensor of (x, y, visible) for item ``i`` from ``parts/part_locs.txt``."""
        if self._parts is None:
            locs_file = self.folder / "parts" / "part_locs.txt"
            if not locs_file.is_file():
                raise DatasetNotFoundError("cub200 parts", locs_file, HOW_TO_GET)
            table: dict[int, list[list[float]]] = {}
            for line in locs_file.read_text().splitlines():
                if line.strip():
                    img_id, _part, x, y, vis = line.split()
                    table.setdefault(int(img_id), []).append([float(x), float(y), float(vis)])
            self._parts = {k: torch.tensor(v) for k, v in table.items()}
        return self._parts[self.ids[i]]

    def part_names(self) -> list[str]:
        """Names of the 15 parts, from ``parts/parts.txt``."""
        rows = _table(self.folder / "parts" / "parts.txt")
        return [" ".join(rows[k]) for k in sorted(rows)]


def build(spec: DatasetSpec, split: str, augment: bool, root: Path, seed: int, crop: bool = True):
    return CUB200(spec, root, split, augment, crop=crop)
