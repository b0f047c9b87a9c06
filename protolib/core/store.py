"""One cache for everything protolib stores: paths, keys, atomic writes, locks, safe loading.

Every cached thing (generated datasets, backbones, embeddings, explanation maps, ProtoPNet
stages) is a ``.pt`` file ``<cache root>/<folder>/<name>-<key>.pt`` holding ``{"state_dict":
tensors, "meta": plain values}``; the reproduction's steps are JSON files in the ``reproduce``
folder that hold their key fields (:func:`key_fields`, compared field by field so that a record
made by other code can still be read). The key is a short hash of everything that changes the file:

* the *kind* and its format version (:data:`FORMATS`; bump one when the meaning of that kind's
  files or the code of an equation behind them changes, and only that kind is rebuilt);
* the caller's fields (architecture, recipe, seed, ...);
* a fingerprint of the data's content (:func:`fingerprint`), so that new or changed data files
  never meet a model trained on the old ones;
* where the code makes the numbers, the digest of protolib's source (:func:`code_digest`).

Writes go to a temporary file that is renamed into place (never half a file), under a file lock
(two notebooks asking for the same thing build it once); reads use
``torch.load(weights_only=True)`` and a corrupt file is rebuilt with a warning.
``python -m protolib.core.store --list`` lists what the cache holds (kind, files, size, total);
``--clear [KIND]`` empties it, or one kind of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from filelock import FileLock

from protolib.core import config

# Format version of each kind of cached file; a bump rebuilds that kind only.
FORMATS: dict[str, int] = {
    "backbone": 2,      # 2: keyed by the content of the train and test splits and the weights file
    "features": 2,
    "maps": 2,
    "protopnet": 3,     # 3: a stage's history holds the training accuracy as a fraction, no longer in percent
    "birds": 2,
    "reproduce": 2,     # a reproduction step's JSON file (its key is stored in it, see protolib.reproduce.keys)
}
FOLDERS = {"backbone": "models", "features": "features", "maps": "maps", "protopnet": "protopnet", "birds": "data",
           "reproduce": "reproduce"}


# The package whose source :func:`code_digest` hashes (a test may point it at a copy).
CODE_ROOT = Path(__file__).resolve().parent.parent  # the whole protolib package


def code_digest(package: str | Path | None = None) -> str:
    """A short hash (12 hex digits) of every ``.py`` file of protolib (relative path and bytes).

    Results that protolib computes and keeps by key (the reproduction's steps) put it in their key,
    so that a change of the code that computes them reruns them instead of reading old numbers.
    The whole package is hashed, not each step's own dependencies: a step reaches into training,
    data, features, k-means, maps and ProtoPNet, and a hand-kept list of what it imports would
    miss the next helper it calls; the price is that any edit reruns the steps (minutes, once).
    """
    base = Path(package) if package is not None else CODE_ROOT
    h = hashlib.sha256()
    for file in sorted(base.rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        h.update(file.relative_to(base).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def root(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir`` when given, else :func:`protolib.core.config.cache_root`."""
    return Path(cache_dir) if cache_dir is not None else config.cache_root()


def digest(**fields) -> str:
    """A short stable hash (12 hex digits) of JSON-able ``fields``."""
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def key_fields(kind: str, code: bool = False, **fields) -> dict:
    """Everything that identifies an artefact of ``kind``, as plain JSON values: its format version,
    the caller's ``fields`` (data fingerprints among them) and, with ``code``, :func:`code_digest`
    (for results whose numbers the code makes, such as the reproduction's steps)."""
    if kind not in FORMATS:
        raise ValueError(f"unknown cache kind {kind!r}; known kinds: {sorted(FORMATS)}")
    out = {"format": FORMATS[kind], **fields}
    if code:
        out["code"] = code_digest()
    return json.loads(json.dumps(out, default=str))


def key(kind: str, code: bool = False, **fields) -> str:
    """The cache key of a file of ``kind``: a short hash of its :func:`key_fields`."""
    return digest(kind=kind, **key_fields(kind, code, **fields))


def path(kind: str, name: str, key_: str, cache_dir: str | Path | None = None) -> Path:
    """``<root>/<folder of kind>/<name>-<key>.pt``."""
    return folder(kind, cache_dir) / f"{name}-{key_}.pt"


def folder(kind: str, cache_dir: str | Path | None = None) -> Path:
    """The folder of ``kind``'s files: ``<root>/<folder of kind>``."""
    if kind not in FOLDERS:
        raise ValueError(f"unknown cache kind {kind!r}; known kinds: {sorted(FOLDERS)}")
    return root(cache_dir) / FOLDERS[kind]


def fingerprint(dataset) -> str:
    """A cheap hash (16 hex digits) of a dataset's content.

    Datasets may say what their content is with a ``content_fingerprint()`` method (CUB: the
    file list, file sizes and labels); otherwise the labels and, when held in memory as a
    tensor ``images``, the pixels are hashed. A ``Subset`` hashes its parent and its indices.
    """
    from torch.utils.data import Subset

    if isinstance(dataset, Subset):
        h = hashlib.sha256(fingerprint(dataset.dataset).encode())
        h.update(torch.as_tensor(list(dataset.indices), dtype=torch.long).numpy().tobytes())
        return h.hexdigest()[:16]
    own = getattr(dataset, "content_fingerprint", None)
    if callable(own):
        return own()
    h = hashlib.sha256(torch.as_tensor(dataset.targets).numpy().tobytes())
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor):
        h.update(str(tuple(images.shape)).encode())
        h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def atomic_write(file: Path, write: Callable[[object], None]) -> None:
    """Call ``write`` on a binary temporary file in the same folder, then rename: never half a file."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj, file: Path) -> None:
    """``torch.save`` ``obj`` to ``file`` atomically."""
    atomic_write(file, lambda f: torch.save(obj, f))


def atomic_write_text(file: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``file`` atomically."""
    atomic_write(file, lambda f: f.write(text.encode()))


def write_json(file: Path, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``file`` atomically."""
    atomic_write_text(file, json.dumps(obj, indent=1, sort_keys=True))


def read_json(file: Path) -> dict | None:
    """The JSON object in ``file``, or ``None`` when it is missing, half written or not an object."""
    try:
        obj = json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def safe_load(file: Path) -> dict | None:
    """A cached file's ``{"state_dict", "meta"}``, or ``None`` (with a warning) when missing or corrupt."""
    file = Path(file)
    if not file.exists():
        return None
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or "state_dict" not in obj:
            raise ValueError("not a protolib checkpoint")
        return obj
    except Exception as err:
        warnings.warn(f"cached checkpoint {file} is unreadable ({err}); it will be rebuilt", stacklevel=2)
        return None


def load_or_build(file: Path, build: Callable[[], dict]) -> tuple[dict, bool]:
    """The file at ``file``, built with ``build()`` and saved under a file lock when absent.

    Returns ``(checkpoint, from_cache)``. Other processes asking for the same file wait for the
    lock and then read what the first one wrote.
    """
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(file) + ".lock"):
        ckpt = safe_load(file)
        if ckpt is not None:
            return ckpt, True
        ckpt = build()
        atomic_save(ckpt, file)
        return ckpt, False


def files(kind: str, cache_dir: str | Path | None = None) -> list[Path]:
    """The files of ``kind`` in the cache (lock files and half-written temporaries left out)."""
    base = folder(kind, cache_dir)
    if not base.is_dir():
        return []
    return sorted(f for f in base.rglob("*") if f.is_file() and not f.name.endswith((".lock", ".tmp")))


def listing(cache_dir: str | Path | None = None) -> dict[str, tuple[int, int]]:
    """{kind: (number of files, bytes)} of everything the cache holds."""
    out = {}
    for kind in FOLDERS:
        found = files(kind, cache_dir)
        out[kind] = (len(found), sum(f.stat().st_size for f in found))
    return out


def clear(kind: str | None = None, cache_dir: str | Path | None = None) -> int:
    """Delete every file of ``kind`` (every kind when ``None``) from the cache; returns how many."""
    kinds = list(FOLDERS) if kind is None else [kind]
    removed = 0
    for k in kinds:
        base = folder(k, cache_dir)
        for f in files(k, cache_dir):
            f.unlink(missing_ok=True)
            removed += 1
        for lock in base.rglob("*.lock") if base.is_dir() else ():
            lock.unlink(missing_ok=True)
    return removed


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def describe(cache_dir: str | Path | None = None) -> str:
    """The listing as a small table: kind, folder, files, size, and the total."""
    found = listing(cache_dir)
    lines = [f"cache root: {root(cache_dir)}", f"{'kind':10s} {'folder':10s} {'files':>6s} {'size':>10s}"]
    for kind, (count, size) in found.items():
        lines.append(f"{kind:10s} {FOLDERS[kind]:10s} {count:6d} {_size(size):>10s}")
    count, size = sum(c for c, _ in found.values()), sum(s for _, s in found.values())
    lines.append(f"{'total':10s} {'':10s} {count:6d} {_size(size):>10s}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m protolib.core.store --list`` / ``--clear [KIND]`` (``--cache-dir`` another root)."""
    ap = argparse.ArgumentParser(prog="python -m protolib.core.store", description="List or clear protolib's cache.")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="kind, files and size of everything cached")
    what.add_argument("--clear", nargs="?", const="all", metavar="KIND",
                      help=f"delete the files of KIND (one of {', '.join(FOLDERS)}), or of every kind")
    ap.add_argument("--cache-dir", default=None, help="cache root (default: $PROTOLIB_CACHE)")
    args = ap.parse_args(argv)
    if args.clear is not None:
        kind = None if args.clear == "all" else args.clear
        if kind is not None and kind not in FOLDERS:
            print(f"error: unknown cache kind {kind!r}; known kinds: {', '.join(FOLDERS)}", file=sys.stderr)
            return 2
        print(f"removed {clear(kind, args.cache_dir)} file(s) from {root(args.cache_dir)}")
    print(describe(args.cache_dir))
    return 0


__all__ = ["FORMATS", "FOLDERS", "CODE_ROOT", "code_digest", "root", "digest", "key_fields", "key", "path", "folder",
           "fingerprint", "atomic_write", "atomic_save", "atomic_write_text", "write_json", "read_json", "safe_load",
           "load_or_build", "files", "listing", "clear", "describe", "main"]


if __name__ == "__main__":
    sys.exit(main())
