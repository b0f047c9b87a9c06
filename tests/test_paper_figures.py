"""Which data Figures 1 and 2 are drawn on."""

from protolib.reproduce import figures

# The sparrow classes of CUB-200-2011 (classes.txt, 113-133) and a few neighbours.
CUB_NAMES = [f"{i:03d}.Other_{i}" for i in range(1, 113)] + [
    "113.Baird_Sparrow", "114.Black_throated_Sparrow", "115.Brewer_Sparrow", "116.Chipping_Sparrow",
    "117.Clay_colored_Sparrow", "118.House_Sparrow", "119.Field_Sparrow", "120.Fox_Sparrow",
    "121.Grasshopper_Sparrow", "122.Harris_Sparrow", "123.Henslow_Sparrow", "124.Le_Conte_Sparrow",
    "125.Lincoln_Sparrow", "126.Nelson_Sharp_tailed_Sparrow", "127.Savannah_Sparrow", "128.Seaside_Sparrow",
    "129.Song_Sparrow", "130.Tree_Sparrow", "131.Vesper_Sparrow", "132.White_crowned_Sparrow",
    "133.White_throated_Sparrow"] + [f"{i:03d}.Other_{i}" for i in range(134, 189)] + [
    "189.Red_bellied_Woodpecker"] + [f"{i:03d}.Other_{i}" for i in range(190, 201)]


def test_cub_gives_the_twenty_sparrows_and_the_woodpecker(monkeypatch):
    assert len(CUB_NAMES) == 200
    monkeypatch.setattr(figures, "_class_names", lambda name: CUB_NAMES if name == "cub200" else [])
    f2 = figures.figure2_data(["digits", "birds", "cub200"])
    assert f2.dataset == "cub200" and len(f2.classes) == 20
    assert f2.classes == tuple(i for i in range(112, 133) if i != 117)        # 0-based; House Sparrow out
    f1 = figures.figure1_data(["digits", "birds", "cub200"])
    assert f1.dataset == "cub200" and f1.classes == (188,) and "woodpecker" in f1.note


def test_without_cub_the_synthetic_birds_and_the_note_says_so(monkeypatch):
    sizes = {"birds": 20, "digits": 10, "mnist": 10}
    monkeypatch.setattr(figures, "_class_names", lambda name: [str(i) for i in range(sizes[name])])
    f2 = figures.figure2_data(["digits", "mnist", "birds"])
    assert f2.dataset == "birds" and f2.classes == tuple(range(20)) and "not present" in f2.note
    f1 = figures.figure1_data(["digits", "mnist", "birds"])
    assert f1.dataset == "birds" and f1.classes is None and "not the paper's woodpecker" in f1.note
    assert figures.figure2_data(["digits"]).classes == tuple(range(10))
