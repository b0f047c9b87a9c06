"""The curated API: every name of ``protolib.__all__`` imports from ``protolib`` and carries a
docstring example that runs (a doctest), as a reader would try it."""

from __future__ import annotations

import doctest

import pytest

import protolib


def test_the_public_api_is_small_and_importable():
    assert 8 <= len(protolib.__all__) <= 12
    for name in protolib.__all__:
        assert getattr(protolib, name).__doc__, name


@pytest.mark.parametrize("name", protolib.__all__)
def test_each_public_name_has_a_docstring_example_that_runs(name, monkeypatch):
    monkeypatch.setenv("PROTOLIB_DEVICE", "cpu")
    obj = getattr(protolib, name)
    found = [t for t in doctest.DocTestFinder(recurse=False).find(obj, name, globs={}) if t.examples]
    assert found, f"protolib.{name} has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in found:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0, name
