"""The reader's test runs in the caller's environment: no per-test empty cache or data root."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_roots():
    """Overrides tests/conftest.py's fixture of the same name: the chapter shares the run's
    PROTOLIB_CACHE (see test_reader's docstring; its data root is an empty folder of its own) and its device."""
    yield
