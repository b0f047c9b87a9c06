"""The README's code runs as printed: a user's first contact with the library."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 2, "the README lost its usage examples"


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs(code, capsys):
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip(), "each snippet prints its result"


def test_first_example_explains_a_model_that_is_not_ours():
    first = SNIPPETS[0]
    assert "torchvision.models.resnet18(num_classes=3)" in first and "build_model" not in first
    assert len(first.strip().splitlines()) <= 10, "the first example stays a few lines"


def test_readme_install_lines_use_the_project_address():
    import tomllib
    url = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    text = README.read_text()
    assert f'pip install "protolib @ git+{url}"' in text
    assert f'pip install "protolib[book] @ git+{url}"' in text
