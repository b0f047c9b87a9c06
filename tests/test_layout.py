"""The one-screen map in protolib's docstring matches the code: every module it names imports, and
every module of the package is named in it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import protolib
from test_import_graph import imports, modules

PACKAGE = Path(protolib.__file__).resolve().parent


def named_in_map(doc: str) -> set[str]:
    """Dotted names of the modules and packages the map names: an entry is a name at indent 0
    (a folder) or 4 (inside it), followed by at least two spaces; its modules in brackets may run
    over its continuation lines."""
    entries: list[tuple[int, str, str]] = []
    for line in doc.split("\n\n", 2)[2].splitlines():
        m = re.match(r"^( {0,4})(\w+)/?\s{2,}(.*)$", line)
        if m and len(m.group(1)) in (0, 4):
            entries.append((len(m.group(1)) // 4, m.group(2), m.group(3)))
        elif entries and line.startswith(" " * 8):
            depth, name, text = entries[-1]
            entries[-1] = (depth, name, text + " " + line.strip())
    names, stack = set(), []
    for depth, name, text in entries:
        stack[depth:] = [name]
        dotted = "protolib." + ".".join(stack)
        names.add(dotted)
        for listed in re.findall(r"\[([^\]]*)\]", text):
            names |= {f"{dotted}.{n.strip()}" for n in listed.split(",")}
    return names


def in_package() -> set[str]:
    out = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__" or parts == ("protolib", "__init__"):
            continue
        out.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_every_module_of_the_map_imports_and_none_is_missing():
    mapped = named_in_map(protolib.__doc__)
    assert {"protolib.core.config", "protolib.core.data.birds224", "protolib.reproduce.geometry.live",
            "protolib.method.explain.cam", "protolib.baselines.protopnet.push", "protolib.viz.layout"} <= mapped
    for name in sorted(mapped):
        importlib.import_module(name)
    assert in_package() - mapped == set(), "modules missing from the map in protolib/__init__.py"
    assert mapped - in_package() == set(), "the map names modules that do not exist"


def test_a_layer_imports_only_the_layers_above_it_in_the_map():
    layers = [m.group(1) for m in re.finditer(r"^(\w+)/ ", protolib.__doc__, re.M)]
    assert layers == ["core", "method", "baselines", "evaluation", "viz", "reproduce"]
    found = modules()
    rank = {name: i for i, name in enumerate(layers)}
    upward = [(name, target) for name, path in found.items() for target in imports(name, path, set(found))
              if name.split(".")[1:2] and target.split(".")[1:2]
              and rank.get(target.split(".")[1], -1) > rank.get(name.split(".")[1], len(layers))]
    assert upward == []
