"""protolib.core.determinism: exact() switches every non-exact setting off and restores them all;
tolerance() follows the dtype (and TF32 on CUDA)."""

import os
import warnings

import pytest
import torch

from protolib.core import determinism
from protolib.core.determinism import CUBLAS_ENV


def _loosen():
    """A state unlike exact()'s, as a GPU user's notebook might leave it."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = True
    os.environ.pop(CUBLAS_ENV, None)


@pytest.fixture
def restore_torch():
    saved = determinism.state()
    yield
    determinism._restore(saved)


def test_exact_switches_everything_off_and_restores(restore_torch):
    _loosen()
    before = determinism.state()
    with determinism.exact():
        inside = determinism.state()
        assert not torch.is_autocast_enabled("cpu")
    assert inside == {"matmul_tf32": False, "cudnn_tf32": False, "matmul_precision": "highest",
                      "deterministic": True, "warn_only": False, "cudnn_deterministic": True,
                      "cudnn_benchmark": False, "cublas_env": ":4096:8"}
    assert determinism.state() == before
    assert before["cudnn_benchmark"] is True and before["cublas_env"] is None


def test_exact_restores_after_an_error_and_keeps_a_users_cublas_setting(restore_torch):
    _loosen()
    os.environ[CUBLAS_ENV] = ":16:8"
    before = determinism.state()
    with pytest.raises(RuntimeError, match="boom"), determinism.exact():
        assert os.environ[CUBLAS_ENV] == ":16:8"
        raise RuntimeError("boom")
    assert determinism.state() == before


def test_exact_turns_autocast_off_inside(restore_torch):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lin = torch.nn.Linear(4, 3)
        x = torch.ones(2, 4)
        assert lin(x).dtype == torch.bfloat16
        with determinism.exact():
            assert lin(x).dtype == torch.float32
        assert lin(x).dtype == torch.bfloat16


def test_exact_cpu_results_are_bit_identical(restore_torch):
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(64, 128, generator=gen), torch.randn(128, 32, generator=gen)
    conv = torch.nn.Conv2d(3, 8, 3)
    img = torch.randn(2, 3, 16, 16, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no deterministic-algorithm warning on the CPU
        with determinism.exact():
            inside = (x @ w, conv(img))
    assert torch.equal(inside[0], x @ w) and torch.equal(inside[1], conv(img))


def test_eps_and_tolerance_follow_the_dtype(restore_torch):
    assert determinism.eps(torch.float32) == 2.0 ** -23
    assert determinism.eps(torch.float64) == 2.0 ** -52
    assert determinism.eps(torch.bfloat16) == 2.0 ** -7
    assert determinism.tolerance(torch.float32) == pytest.approx(1000 * 2.0 ** -23)
    assert determinism.tolerance(torch.float64, scale=10.0) == pytest.approx(1e4 * 2.0 ** -52)
    torch.backends.cudnn.allow_tf32 = True
    assert determinism.eps(torch.float32, "cuda") == 2.0 ** -10   # TF32 allowed: what CUDA gets
    assert determinism.eps(torch.float64, "cuda") == 2.0 ** -52   # TF32 never touches float64
    with determinism.exact():
        assert determinism.eps(torch.float32, "cuda") == 2.0 ** -23


def test_bad_tolerance_inputs_are_named():
    with pytest.raises(ValueError, match="floating-point dtype, got torch.int64"):
        determinism.eps(torch.int64)
    with pytest.raises(ValueError, match="scale=-1"):
        determinism.tolerance(torch.float32, scale=-1)


def test_banner_says_when_a_chapter_runs_on_a_gpu(monkeypatch):
    from protolib.core import config
    monkeypatch.setenv("PROTOLIB_DEVICE", "cpu")
    assert "GPU run" not in config.describe()
    monkeypatch.setattr(config, "get_device", lambda device=None: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "Test GPU 80GB")
    text = config.describe()
    assert "device           : cuda:0 (Test GPU 80GB)" in text
    assert "GPU run          : on a GPU;" in text and "protolib.core.determinism.exact()" in text


def test_theorem1_check_restores_the_callers_settings(restore_torch):
    from tiny_nets import TinyNet

    from protolib.method import theorem1
    _loosen()
    before = determinism.state()
    check = theorem1.theorem1_check(TinyNet(), torch.rand(2, 2, 8, 8), torch.float64)
    assert check.max_abs_error < 1e-12 and determinism.state() == before


def test_the_chapters_checked_calls_run_inside_exact_on_the_cpu(restore_torch):
    """What chapters 1, 4, 5 and 6 run inside exact(): no CPU op refuses deterministic mode, and
    the numbers are those computed outside it, bit for bit."""
    from test_protopnet import TinySet, tiny_model
    from test_viz_maps import _tiny_rgb_dataset

    from protolib.baselines import protopnet
    from protolib.core.models import build_model
    from protolib.method import theorem1
    from protolib.method.explain import cam, maps
    torch.manual_seed(0)
    net, ds = build_model("resnet18", 2).eval(), _tiny_rgb_dataset()
    x = torch.stack([ds[i][0] for i in range(4)])
    ex = {n: maps.ExplanationMaps(net, n, k_per_class=2, progress=False).fit(ds) for n in ("B4", "B234")}
    pnet, pds = tiny_model(), TinySet()

    def run():
        return (theorem1.evidence_maps(net, x)[1], cam.last_block_attribution(net, x)[0],
                cam.importance_maps(ex, x).maps["B234"], ex["B234"].features(x),
                cam.grad_cam(net, x, torch.zeros(4, dtype=torch.long), layer="layer4"),
                protopnet.explain(pnet.eval(), pds.x[0], top=3).contributions)
    outside = run()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with determinism.exact():
            inside = run()
    for a, b in zip(outside, inside):
        assert torch.equal(a, b)
