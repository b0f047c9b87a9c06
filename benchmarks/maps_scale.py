"""Scale and speed of the multi-depth explanation maps (protolib.method.explain.maps, protolib.method.explain.cam).

Part 1, memory: a CUB-sized fit on synthetic activations. For each of ``--classes`` classes,
``--images`` images of a ResNet34 at 224 px are simulated block by block (layer2 128 x 28 x 28,
layer3 256 x 14 x 14, layer4 512 x 7 x 7, ReLU'd clusters), turned into B234 pixel vectors
(28 x 28 grid, 896 dims) and clustered into ``--k`` prototypes; then ``--assign`` images are
assigned to all prototypes in chunks. Prints the time and the peak resident memory of the
process (and of the GPU when used): the fit never holds more than one class's pixels.

Part 2, speed: time per image of a bare forward pass, of the explanation maps (B4, B34, B234),
of the explanation plus importance maps (eq. 11 propagated; one forward pass for all), and of
Captum's Grad-CAM at layer2, on the same model, batch and device, measured round-robin in this
one run; median and minimum with their ratios to the forward pass (on a shared machine the
minimum is the steadier figure).

    .venv/bin/python benchmarks/maps_scale.py                      # CUB-sized, ResNet34 at 224 px
    .venv/bin/python benchmarks/maps_scale.py --classes 20 --assign 100   # a shorter run
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torchvision

from protolib.core import config
from protolib.core.models import build_model
from protolib.method.explain import cam, maps, maps_multi

GRIDS = {"layer2": (128, 28), "layer3": (256, 14), "layer4": (512, 7)}  # ResNet34 at 224 px


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic_blocks(c: int, n: int, device, parts: int = 12) -> dict[str, torch.Tensor]:
    """ReLU'd block outputs of ``n`` images of class ``c``: each pixel shows one of ``parts``
    class-specific patterns plus noise, laid out in blobs on a coarse 4 x 4 part map."""
    g = torch.Generator().manual_seed(c)
    layout = torch.randint(0, parts, (n, 1, 4, 4), generator=g).float()
    acts = {}
    for name, (d, s) in GRIDS.items():
        patterns = torch.randn(parts, d, generator=g)
        ids = torch.nn.functional.interpolate(layout, size=(s, s), mode="nearest")[:, 0].long()
        x = patterns[ids].permute(0, 3, 1, 2) + 0.5 * torch.randn(n, d, s, s, generator=g)
        acts[name] = x.relu_().to(device)
    return acts


def memory_part(args, device) -> None:
    # fitting from activations needs no network: a placeholder with ResNet's block names stands in for
    # it (no weights, so it runs on ``device``), and B234 is named by its blocks
    placeholder = torch.nn.ModuleDict({name: torch.nn.Identity() for name in GRIDS})
    ex = maps.ExplanationMaps(placeholder, list(GRIDS), k_per_class=args.k, n_init=1, max_iter=args.max_iter,
                              device=device, progress=False)
    base = peak_rss_gib()
    start = time.perf_counter()

    def per_class():
        for c in range(args.classes):
            h = ex.features_from(synthetic_blocks(c, args.images, device))
            yield h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])

    ex.fit_features(per_class())
    fit_s = time.perf_counter() - start
    rows = args.images * 28 * 28
    print(f"fit: {args.classes} classes x {args.images} images x 28x28 px = {rows:,} pixel vectors of 896 dims "
          f"per class ({rows * 896 * 4 / 2**20:.0f} MiB in float32), K/C={args.k}: {fit_s:.1f} s "
          f"({fit_s / args.classes:.2f} s per class), mean k-means inertia {ex.inertia_.mean():.3g}")
    start = time.perf_counter()
    done, batch = 0, 16
    while done < args.assign:
        n = min(batch, args.assign - done)
        ex.explain_activations(synthetic_blocks(10_000 + done, n, device))
        done += n
    assign_s = time.perf_counter() - start
    print(f"assignment: {args.assign} images to {len(ex.prototypes_)} prototypes: {assign_s:.1f} s "
          f"({1000 * assign_s / max(args.assign, 1):.0f} ms per image)")
    peak = peak_rss_gib()
    print(f"peak resident memory: {peak:.2f} GiB (process before the fit: {base:.2f} GiB)")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    assert peak < 8.0, "the CUB-sized fit must fit in 8 GiB"


def timings(fns: dict, repeats: int, device) -> dict[str, tuple[float, float]]:
    """(median, min) wall time of each ``fns[name]()``, measured round-robin after one warm-up
    each, so that a slow spell of a shared machine hits every method alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - t)
    return {k: (sorted(v)[len(v) // 2], min(v)) for k, v in times.items()}


def speed_part(args, device) -> None:
    torch.manual_seed(0)
    model = build_model(args.arch, args.classes).to(device).eval()
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    g = torch.Generator().manual_seed(0)
    explainers = {}
    for name in ("B4", "B34", "B234"):  # prototypes of the right shape; their values do not change the cost
        ex = maps.ExplanationMaps(model, name, k_per_class=args.k, device=device, progress=False)
        d = ex.features(x[:1]).shape[1]
        explainers[name] = ex.fit_features(torch.rand(4 * args.k, d, generator=g) for _ in range(args.classes))
    with torch.no_grad():
        targets = model(x).argmax(1)

    def forward():
        with torch.no_grad():
            model(x)

    fns = {
        "bare forward pass": forward,
        "explanation maps B4+B34+B234": lambda: maps_multi.explain_all(explainers, x),
        "explanation + importance maps (eq. 11, chain)": lambda: cam.importance_maps(explainers, x),
        "Captum Grad-CAM at layer2": lambda: cam.grad_cam(model, x, targets, layer="layer2"),
    }
    res = timings(fns, args.repeats, device)
    base_med, base_min = res["bare forward pass"]
    print(f"\n{args.arch} at {args.size} px, {args.classes} classes x {args.k} prototypes, batch {args.batch}, "
          f"{device}, {torch.get_num_threads()} threads; {args.repeats} round-robin repeats")
    print(f"  {'':46s} {'median ms/img':>13s} {'ratio':>6s} {'min ms/img':>10s} {'ratio':>6s}")
    for name, (med, mn) in res.items():
        print(f"  {name:46s} {1000 * med / args.batch:13.1f} {med / base_med:6.2f} "
              f"{1000 * mn / args.batch:10.1f} {mn / base_min:6.2f}")
    ours, gc = res["explanation + importance maps (eq. 11, chain)"], res["Captum Grad-CAM at layer2"]
    print(f"  ours / Grad-CAM: median {ours[0] / gc[0]:.2f}, min {ours[1] / gc[1]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--images", type=int, default=30, help="training images per class")
    p.add_argument("--k", type=int, default=10, help="prototypes per class")
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--assign", type=int, default=200, help="images assigned after the fit")
    p.add_argument("--arch", default="resnet34")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    device = config.get_device()
    print(config.describe())
    print(f"torchvision {torchvision.__version__}\n")
    if not args.skip_memory:
        memory_part(args, device)
    speed_part(args, device)


if __name__ == "__main__":
    main()
