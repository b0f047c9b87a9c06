"""protolib.reproduce.paper holds the paper's Tables 1 and 2 as printed."""

import pytest

from protolib.reproduce import paper


def test_table1_spot_values():
    assert paper.TABLE1["CNN"]["mnist"] == (0.48, -0.05)
    assert paper.TABLE1["CNN"]["cub200"] == (0.51, 0.00)
    assert paper.TABLE1["KMEx K/C=1"]["stl10"] == (0.79, 0.42)
    assert paper.TABLE1["KMEx K/C=5"]["cub200"] == (0.87, 0.45)
    assert paper.TABLE1["ProtoPNet"]["mnist"] == (1.00, 1.00) and paper.TABLE1["ProtoPNet"]["stl10"] == (0.95, 0.92)


def test_table2_spot_values():
    assert paper.TABLE2["CNN"]["stl10"] == (95.6, 86.1)
    assert paper.TABLE2["KMEx K/C=5"]["cub200"] == (100.0, 78.6)
    assert paper.TABLE2["ProtoPNet"]["stl10"] == (74.2, 72.7) and paper.TABLE2["ProtoPNet"]["cub200"] == (99.4, 66.4)
    assert paper.TABLE2["ProtoPNet in Chen et al. (2019)"] == {"cub200": (None, 79.2)}
    assert paper.TABLE2["Ours B4"]["cub200"] == (100.0, 75.2)
    assert paper.TABLE2["Ours B234"]["mnist"] == (98.9, 98.5) and paper.TABLE2["Ours B234"]["cub200"] == (85.5, 52.8)


def test_tables_are_complete():
    assert list(paper.TABLE1) == ["CNN", "KMEx K/C=1", "KMEx K/C=5", "ProtoPNet"]
    assert all(set(v) == set(paper.DATASETS) for v in paper.TABLE1.values())
    assert [r for r in paper.TABLE2 if set(paper.TABLE2[r]) == set(paper.DATASETS)] == [
        "CNN", "KMEx K/C=5", "ProtoPNet", "Ours B4", "Ours B234"]
    assert paper.PROTOTYPES_PER_CLASS == {"mnist": 5, "stl10": 5, "cub200": 10} and paper.KMEX_TABLE_K == 5


def test_lookup_through_our_datasets():
    assert paper.value(2, "Ours B4", "cub200", "test") == 75.2
    assert paper.value(1, "KMEx K/C=5", "birds", "out") == 0.45       # the birds stand in for CUB-200
    assert paper.value(2, "CNN", "digits", "train") is None             # no digits column in the paper
    assert paper.value(2, "ProtoPNet in Chen et al. (2019)", "cub200", "train") is None
    with pytest.raises(ValueError):
        paper.value(3, "CNN", "mnist", "test")
    with pytest.raises(ValueError):
        paper.value(1, "CNN", "mnist", "test")


def test_gaps_quotes_the_papers_row_minus_reference_per_dataset():
    assert paper.gaps("KMEx K/C=5", "CNN") == "MNIST +0.0, STL10 -0.5, CUB200 -0.5"
    assert paper.gaps("Ours B234", "Ours B4", "train").startswith("MNIST ")
    with pytest.raises(ValueError, match="metrics"):
        paper.gaps("CNN", "CNN", "class")
