"""Run every metric of :mod:`protolib.evaluation` on one batch of images, method by method.

The chapter "Are the explanations right?" calls these on the birds and on the digits; each
returns per-image values, so that tables can give a mean and a 95 % interval over images.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from protolib.evaluation import faithfulness as fa
from protolib.evaluation import localisation as lo
from protolib.evaluation import methods, sanity
from protolib.method.explain.maps import ExplanationMaps


def curves(model: nn.Module, maps: Mapping[str, torch.Tensor], x: torch.Tensor, targets: int | torch.Tensor,
           steps: int = 8, baseline: str = "blur", progress: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    """{method: {"deletion": (B, steps + 1), "insertion": (B, steps + 1)}} for maps brought to the image size,
    scored on the classes ``targets`` (one class index per image, or one for all)."""
    out = {}
    for name, m in tqdm(maps.items(), desc="deletion and insertion", disable=not progress):
        up = fa.to_size(m, tuple(x.shape[-2:]))
        out[name] = {mode: fa.curve(model, x, up, targets, mode, steps, baseline) for mode in ("deletion", "insertion")}
    return out


def areas(curves_: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    """{method: {"deletion area": (B,), "insertion area": (B,)}} from :func:`curves`."""
    return {n: {f"{k} area": fa.area(v) for k, v in c.items()} for n, c in curves_.items()}


def localisation(maps: Mapping[str, torch.Tensor], masks: torch.Tensor, n_parts: int,
                 deciding: Sequence[Sequence[int] | None]) -> dict[str, dict[str, torch.Tensor]]:
    """Per method and image: share of importance on the bird, pointing game on the bird, and, for
    the images whose class has a twin (``deciding[i]`` not None), the share of the bird's importance
    on the deciding part(s). The row ``"area (blind map)"`` is what a map blind to the image gets."""
    twins = [i for i, d in enumerate(deciding) if d]
    dec = [deciding[i] for i in twins]
    rows = {}
    for name, m in maps.items():
        ps = lo.shares(m, masks, n_parts)
        rows[name] = {"bird share": ps[:, 1:].sum(1), "pointing game": lo.pointing_game(m, masks > 0),
                      "deciding-part share": lo.deciding_share(ps[twins], dec)}
    area = lo.area_shares(masks, n_parts)
    rows["area (blind map)"] = {"bird share": area[:, 1:].sum(1), "pointing game": (masks > 0).double().mean((1, 2)),
                                "deciding-part share": lo.deciding_share(area[twins], dec)}
    return rows


def randomisation(explainers: Mapping[str, ExplanationMaps], x: torch.Tensor, targets: int | torch.Tensor,
                  top_down: Sequence[str] | None = None, seed: int = 0,
                  n_components: int = 8) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """:func:`sanity.cascade` of every method of :func:`methods.compare` (prototypes kept, weights
    randomised); ``top_down`` defaults to :func:`sanity.top_down` of the model (on a ResNet
    ``fc``, ``layer4``, ``layer3``, ``layer2``)."""
    model = next(iter(explainers.values())).model
    top_down = sanity.top_down(model) if top_down is None else top_down
    return sanity.cascade(model, top_down, lambda net: methods.compare(explainers, x, targets, net, n_components, seed),
                          seed)


def randomisation_table(stages: Mapping[str, Mapping[str, tuple[torch.Tensor, torch.Tensor]]]
                        ) -> dict[str, dict[str, torch.Tensor]]:
    """Rows of :func:`randomisation` for :func:`protolib.evaluation.stats.markdown_table`: per method,
    the Spearman correlation after each stage of the cascade, then the SSIM after the first and
    the last stage (the ones between add little to read)."""
    if not stages:
        raise ValueError("no randomisation stage to tabulate")
    rows: dict[str, dict[str, torch.Tensor]] = {}
    for stage, per_method in stages.items():
        for name, (rho, _) in per_method.items():
            rows.setdefault(name, {})[f"Spearman after {stage}"] = rho
    for stage in dict.fromkeys((next(iter(stages)), list(stages)[-1])):
        for name, (_, s) in stages[stage].items():
            rows[name][f"SSIM after {stage}"] = s
    return rows


__all__ = ["curves", "areas", "localisation", "randomisation", "randomisation_table"]
