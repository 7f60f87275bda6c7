"""One inference job: preprocess -> forward -> postprocess -> saliency, each stage timed.

`run` is the only entry point: it takes a decoded volume and a loaded network and returns an
InferenceResult. It is deliberately one plain function with a stage per helper (MONAI Label's
shape without the class hierarchy): the demo model and any TorchScript model that keeps the
two-output contract of `network.DemoUNet.forward` run through it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from inference.engine.fusion import folded
from inference.engine.postprocess import find_findings
from inference.engine.preprocess import normalise_hu, pad_slices
from inference.engine.saliency import explain
from inference.engine.types import InferenceResult, ModelSpec, Volume

Progress = Callable[[str, float], None]
DEFAULT_SIZE_MULTIPLE = 16  # pad to this when the network does not say (`size_multiple`)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` when given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _stage(timings: dict[str, float], name: str, device: torch.device) -> Iterator[None]:
    """Adds the block's wall time (device work included) to timings[name]."""
    _synchronise(device)
    started = time.perf_counter()
    try:
        yield
    finally:
        _synchronise(device)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


def _report(progress: Progress | None, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, fraction)  # an exception here (a cancelled job) ends the run


def _network_on(network: nn.Module, device: torch.device) -> nn.Module:
    parameter = next(iter(network.parameters()), None)
    if parameter is not None and parameter.device != device:
        network = network.to(device)
    return network


def _forward_all(
    network: nn.Module,
    slices: torch.Tensor,
    shape: tuple[int, int, int],
    spec: ModelSpec,
    timings: dict[str, float],
    progress: Progress | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Per-voxel probability (z, y, x), each voxel's most probable channel when there are
    several (else None), and the slice logits (z,), batch by batch."""
    depth, height, width = shape
    device = slices.device
    probability = torch.empty(shape, dtype=torch.float32, device=device)
    channel = torch.empty(shape, dtype=torch.uint8, device=device) if len(spec.labels) > 1 else None
    slice_logits = torch.empty(depth, dtype=torch.float32, device=device)
    batch = spec.slices_per_pass(device.type)
    with torch.inference_mode():
        for start in range(0, depth, batch):
            x = slices[start : start + batch].unsqueeze(1).contiguous(memory_format=torch.channels_last)
            with _stage(timings, "forward", device):
                logits, slice_logit = network(x)
            with _stage(timings, "postprocess", device):
                best, best_channel = torch.sigmoid(logits[:, :, :height, :width].float()).max(dim=1)
                probability[start : start + batch] = best
                if channel is not None:
                    channel[start : start + batch] = best_channel.to(torch.uint8)
                slice_logits[start : start + batch] = slice_logit[:, 0].float()
            _report(progress, "forward", min(1.0, (start + batch) / depth))
    return probability, channel, slice_logits


def run(
    network: nn.Module,
    volume: Volume,
    spec: ModelSpec,
    *,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
    saliency: bool = True,
    saliency_top_k: int = 8,
    saliency_max_finding_slices: int | None = None,
) -> InferenceResult:
    """Runs `network` over every slice of `volume` and returns probabilities, findings,
    scores and (unless `saliency` is False) heatmaps.

    The study score is the highest slice probability from the network's slice head: a study
    is as suspicious as its most suspicious slice. Saliency explains the top `saliency_top_k`
    slices and the findings, within a budget of finding slices (see `saliency.explain`).
    `progress(stage, fraction)` is called between batches and stages; an exception it raises
    propagates (that is how a job is cancelled). `timings` holds seconds per stage; "forward"
    is the model's forward passes alone, synchronised on CUDA.
    """
    device = resolve_device(device)
    network = _network_on(network, device)
    timings: dict[str, float] = {}
    shape = (int(volume.hu.shape[0]), int(volume.hu.shape[1]), int(volume.hu.shape[2]))
    _report(progress, "preprocess", 0.0)
    with _stage(timings, "preprocess", device), torch.no_grad():
        hu = torch.from_numpy(np.ascontiguousarray(volume.hu, dtype=np.float32)).to(device)
        multiple = int(getattr(network, "size_multiple", DEFAULT_SIZE_MULTIPLE))
        slices = pad_slices(normalise_hu(hu, spec.hu_window), multiple, spec.hu_window)
    # The forward pass and saliency run the folded network (a frozen TorchScript one no longer
    # has size_multiple, hence read above).
    network = folded(network)
    _report(progress, "forward", 0.0)
    probability_t, channel_t, slice_logits = _forward_all(network, slices, shape, spec, timings, progress)
    _report(progress, "postprocess", 0.0)
    with _stage(timings, "postprocess", device):
        probability = probability_t.cpu().numpy()
        channel = None if channel_t is None else channel_t.cpu().numpy()
        slice_scores = torch.sigmoid(slice_logits).cpu().numpy().astype(np.float32)
        mask, findings = find_findings(probability, spec, volume.geometry, channel)
        study_score = float(slice_scores.max())
    heatmap = np.zeros(shape, dtype=np.float32)
    finding_heatmaps: dict[int, np.ndarray] = {}
    heatmap_slices: list[int] = []  # none computed
    if saliency:
        _report(progress, "saliency", 0.0)
        with _stage(timings, "saliency", device):
            heatmap, finding_heatmaps, heatmap_slices = explain(
                network,
                slices,
                mask,
                findings,
                slice_scores,
                spec,
                top_k=saliency_top_k,
                max_finding_slices=saliency_max_finding_slices,
                slice_spacing_mm=volume.geometry.spacing[0],
                progress=progress,
            )
    else:
        timings["saliency"] = 0.0
    return InferenceResult(
        probability=probability,
        mask=mask,
        findings=findings,
        study_score=study_score,
        slice_scores=slice_scores,
        heatmap=heatmap,
        finding_heatmaps=finding_heatmaps,
        heatmap_slices=heatmap_slices,
        timings=timings,
        device=str(device),
    )
