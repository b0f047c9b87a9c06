"""The reader's test: a wheel in a fresh environment runs one chapter alone (a package, so that
its conftest does not shadow tests/conftest.py)."""
