"""Saliency: where in the image the network looked, per finding and per study (captum).

Eager networks get Grad-CAM on the layers the model names: `ModelSpec.saliency_layer` for
findings, `study_saliency_layer` (default: the same) for the study. TorchScript networks, which
have no module hooks, models naming no layer, and targets that do not depend on their layer get
the absolute input gradient, smoothed. Either way a map is ReLU'd and scaled to 0..1.

Targets: for a finding, the sum of its label's segmentation logit over the finding's voxels on
each slice of its box; for the study, the slice logit on the slices that matter (the findings'
slices and the top-scoring ones), so saliency costs a fraction of the forward pass. Within a
finding, slices about EXPLAINED_SLICE_SPACING_MM apart are explained (and its last); the maps of
the slices between are interpolated from their neighbours. Grad-CAM's maps allow it: they are as
coarse as the layer they come from (the demo network's bottleneck cell is 8 pixels, 5.6 mm at
0.7 mm pixels), so explaining slices closer than that adds cost, not detail.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from torch import nn

from inference.engine.types import Finding, ModelSpec

Progress = Callable[[str, float], None]
MIN_FINDING_SLICES = 64
FINDING_SLICE_SHARE = 0.15
EXPLAINED_SLICE_SPACING_MM = 5.0
# What autograd and captum say when a target never passed through the layer (captum's when a
# forward skipped the layer altogether, as the slice head alone skips the decoder).
_UNUSED_LAYER = ("not have been used in the graph", "does not require grad", "did not obtain any outputs")


@dataclass(frozen=True)
class _Item:
    """One slice to explain: for the study (finding 0) or for one finding on that slice."""

    z: int
    finding: int = 0
    channel: int = 0


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def _smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) maps."""
    kernel = _gaussian_kernel(sigma, maps.device)
    pad = kernel.numel() // 2
    maps = F.conv2d(F.pad(maps, (pad, pad, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(maps, (0, 0, pad, pad), mode="replicate"), kernel.view(1, 1, -1, 1))


class _Explainer:
    """Attributions of (N,) targets to (N, 1, H, W) inputs, as (N, H, W) maps >= 0.

    Each kind of target has its Grad-CAM layer (None: input gradients). A target that does
    not depend on its layer (a slice head fed from before a decoder layer) falls back to input
    gradients, once and for the rest of the job.
    """

    def __init__(self, network: nn.Module, spec: ModelSpec) -> None:
        self.network = network
        scripted = isinstance(network, torch.jit.ScriptModule)
        names = {"finding": spec.saliency_layer, "study": spec.study_saliency_layer or spec.saliency_layer}
        self.layers = {
            kind: None if scripted or not name else network.get_submodule(name)
            for kind, name in names.items()
        }

    def study_target(self, x: torch.Tensor) -> torch.Tensor:
        # A network may offer its slice head alone (DemoUNet.slice_logits): the same logit
        # without running the decoder, which the study target does not depend on.
        head = getattr(self.network, "slice_logits", None)
        logits = head(x) if callable(head) else self.network(x)[1]
        return cast(torch.Tensor, logits[:, 0])

    def finding_target(self, x: torch.Tensor, masks: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)[0]
        picked = logits[torch.arange(logits.shape[0], device=logits.device), channels]
        return (picked * masks).sum(dim=(1, 2))

    def attribute(self, kind: str, x: torch.Tensor, extra: tuple[torch.Tensor, ...]) -> torch.Tensor:
        forward = self.study_target if kind == "study" else self.finding_target
        size = (x.shape[-2], x.shape[-1])
        layer = self.layers[kind]
        if layer is not None:
            try:
                cam = LayerGradCam(forward, layer).attribute(x, additional_forward_args=extra or None)
                maps = LayerAttribution.interpolate(cam.detach().float(), size, "bilinear")
                return torch.relu(maps[:, 0])
            except (RuntimeError, AssertionError) as error:  # "the target never saw the layer"
                if not any(words in str(error) for words in _UNUSED_LAYER):
                    raise
                self.layers[kind] = None
        x = x.detach().requires_grad_()
        grads = Saliency(forward).attribute(x, additional_forward_args=extra or None, abs=True)
        return _smooth(grads.detach().float(), sigma=max(2.0, size[-1] / 64))[:, 0]


def _scaled(values: np.ndarray, planes: Sequence[int] | None = None) -> np.ndarray:
    """`values` (float32, >= 0) divided by their peak, in place. With `planes`, only those
    slices can hold a value and only they are read and written: a study map is 300 MB, of
    which the explained slices are a few tenths."""
    planes = range(len(values)) if planes is None else planes
    peak = max((float(values[z].max()) for z in planes), default=0.0)
    if peak > 0:
        for z in planes:
            values[z] /= peak
    return values


def finding_slice_budget(depth: int) -> int:
    """How many finding slices one job explains: enough for a handful of lesions, and a
    bounded share of a long series, so saliency stays a fraction of the forward pass."""
    return max(MIN_FINDING_SLICES, math.ceil(FINDING_SLICE_SHARE * depth))


def finding_slice_step(slice_spacing_mm: float | None) -> int:
    """Every how many slices of a finding one is explained: slices about
    EXPLAINED_SLICE_SPACING_MM apart (every slice when the spacing is unknown)."""
    if not slice_spacing_mm or slice_spacing_mm <= 0:
        return 1
    return max(1, int(EXPLAINED_SLICE_SPACING_MM // slice_spacing_mm))


def _sampled(finding: Finding, step: int) -> list[int]:
    """The slices of the finding's box that are explained: every `step`-th from its first, and
    its last, so every slice between lies between two explained ones."""
    low, high = finding.bbox[0]
    chosen = list(range(low, high, step))
    if chosen[-1] != high - 1:
        chosen.append(high - 1)
    return chosen


def _interpolate(maps: np.ndarray, known: Sequence[int], offset: int = 0) -> None:
    """Fills the slices between consecutive `known` ones (sorted z) linearly from those two;
    slice z is maps[z - offset]."""
    for below, above in itertools.pairwise(known):
        for z in range(below + 1, above):
            weight = (z - below) / (above - below)
            maps[z - offset] = (1 - weight) * maps[below - offset] + weight * maps[above - offset]


def _explained(findings: Sequence[Finding], budget: int, step: int) -> list[Finding]:
    """The findings to explain: most probable (then largest) first while their explained
    slices fit the budget; the first always does."""
    chosen: list[Finding] = []
    used = 0
    for finding in sorted(findings, key=lambda f: (-f.max_probability, -f.voxel_count, f.index)):
        size = len(_sampled(finding, step))
        if chosen and used + size > budget:
            continue
        chosen.append(finding)
        used += size
    return sorted(chosen, key=lambda f: f.index)


def _study_slices(findings: Sequence[Finding], slice_scores: np.ndarray, top_k: int, step: int) -> list[int]:
    chosen = {int(z) for z in np.argsort(-slice_scores, kind="stable")[:top_k]}
    for finding in findings:
        chosen.update(_sampled(finding, step))
    return sorted(chosen)


def explain(
    network: nn.Module,
    slices: torch.Tensor,
    mask: np.ndarray,
    findings: Sequence[Finding],
    slice_scores: np.ndarray,
    spec: ModelSpec,
    *,
    top_k: int = 8,
    max_finding_slices: int | None = None,
    slice_spacing_mm: float | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, dict[int, np.ndarray], list[int]]:
    """The study heatmap (z, y, x), the findings' heatmaps over their boxes (float32 0..1) and
    the slices the study heatmap covers (ascending; it is 0 on the others).

    `slices` are the preprocessed, padded slices (Z, H', W') on the network's device; `mask`
    the finding mask (z, y, x) whose finding k drives findings[k - 1]'s map. The study map
    covers the top `top_k` slices by score and the explained findings' slices; other slices
    stay 0. Findings are explained most probable first while their explained slices (see
    `finding_slice_step`; `slice_spacing_mm` is the distance between slices) fit
    `max_finding_slices` (default `finding_slice_budget`); the rest get no map, which only a
    network scattering dozens of findings reaches. Needs autograd: not under inference_mode.
    """
    depth, height, width = mask.shape
    budget = finding_slice_budget(depth) if max_finding_slices is None else max_finding_slices
    step = finding_slice_step(slice_spacing_mm)
    findings = _explained(findings, budget, step)
    explainer = _Explainer(network, spec)
    channel_of = {label: k for k, label in enumerate(spec.labels)}
    study_items = [_Item(z) for z in _study_slices(findings, slice_scores, top_k, step)]
    finding_items = [
        _Item(z, finding.index, channel_of.get(finding.label, 0))
        for finding in findings
        for z in _sampled(finding, step)
    ]
    items = study_items + finding_items
    study = np.zeros(mask.shape, dtype=np.float32)
    local = {f.index: np.zeros([high - low for low, high in f.bbox], dtype=np.float32) for f in findings}
    boxes = {f.index: f.bbox for f in findings}
    mask_device = torch.from_numpy(mask).to(slices.device)
    batch = spec.slices_per_pass(slices.device.type)
    # Study and finding items go in separate batches: their targets differ.
    starts = [*range(0, len(study_items), batch), *range(len(study_items), len(items), batch)]
    ends = [*starts[1:], len(items)]
    with torch.enable_grad():
        for start, end in zip(starts, ends, strict=True):
            chunk = items[start:end]
            x = slices[[item.z for item in chunk]].unsqueeze(1).contiguous(memory_format=torch.channels_last)
            if chunk[0].finding == 0:
                maps = explainer.attribute("study", x, ())[:, :height, :width].cpu().numpy()
                study[[item.z for item in chunk]] = maps
            else:
                selected = torch.stack([mask_device[item.z] == item.finding for item in chunk]).float()
                selected = F.pad(selected, (0, x.shape[-1] - width, 0, x.shape[-2] - height))
                channels = torch.tensor([item.channel for item in chunk], device=slices.device)
                maps = explainer.attribute("finding", x, (selected, channels)).cpu().numpy()
                for item, heat in zip(chunk, maps, strict=True):
                    (z0, _), (y0, y1), (x0, x1) = boxes[item.finding]
                    local[item.finding][item.z - z0] = heat[y0:y1, x0:x1]
            if progress is not None:
                progress("saliency", end / len(items))
    explained_study = {item.z for item in study_items}
    filled = set(explained_study)  # the study slices that can hold a value
    for finding in findings:
        low, high = finding.bbox[0]
        _interpolate(study, sorted(z for z in explained_study if low <= z < high))
        _interpolate(local[finding.index], _sampled(finding, step), offset=low)
        filled.update(range(low, high))
    planes = sorted(filled)
    return _scaled(study, planes), {index: _scaled(values) for index, values in local.items()}, planes
