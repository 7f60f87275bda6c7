"""Evaluating a lesion model on held-out synthetic studies, through the engine's own pipeline.

The figures a model card reports: Dice per lesion study, study-level AUC, sensitivity and
specificity at the study threshold, lesions found by tissue, and false findings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from torch import nn

from fixtures.synthetic import SyntheticStudy, make_ct_study
from inference.engine.decode import decode_series
from inference.engine.pipeline import run
from inference.engine.types import ModelSpec


def _held_out_study(make: Callable[..., SyntheticStudy], index: int) -> SyntheticStudy:
    if index % 2:
        return make(lesions=0)
    for lesions in range(1 + (index // 2) % 3, 0, -1):
        try:
            return make(lesions=lesions)
        except ValueError:  # a small volume cannot hold that many: one fewer
            continue
    raise ValueError("the volume cannot hold a lesion; make it larger")


def held_out_studies(
    count: int, seeds_from: int, shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> Iterator[SyntheticStudy]:
    """Held-out studies, made one at a time: odd ones have no lesion, even ones one to three."""
    slices, rows, columns = shape
    for index in range(count):
        make = partial(
            make_ct_study, seed=seeds_from + index, slices=slices, rows=rows, columns=columns, spacing=spacing
        )
        yield _held_out_study(make, index)


def _study_figures(study: SyntheticStudy, network: nn.Module, spec: ModelSpec) -> dict[str, Any]:
    volume = decode_series(study.datasets, spec.input)
    result = run(network, volume, spec, device="cpu", saliency=False)
    where = {str(ds.SOPInstanceUID): k for k, ds in enumerate(study.datasets)}
    truth = study.mask[[where[uid] for uid in volume.geometry.sop_instance_uids]]
    predicted = result.mask > 0
    lesion_hits = [bool(predicted[truth == label].any()) for label in range(1, len(study.lesions) + 1)]
    overlapping = {int(v) for v in np.unique(result.mask[truth > 0])} - {0}
    denominator = int(predicted.sum() + (truth > 0).sum())
    return {
        "seed": study.seed,
        "lesions": len(study.lesions),
        "in_lung": [lesion.contrast_hu > 500 for lesion in study.lesions],
        "detected": lesion_hits,
        "false_findings": len(result.findings) - len(overlapping),
        "dice": 2 * float((predicted & (truth > 0)).sum()) / denominator if study.lesions else None,
        "study_score": result.study_score,
        "forward_seconds": result.timings["forward"],
    }


def evaluate(
    network: nn.Module,
    studies: Iterable[SyntheticStudy],
    spec: ModelSpec,
    *,
    study_threshold: float,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Figures on held-out studies through the engine's own pipeline: mean Dice over the
    lesion studies, study-level AUC, sensitivity/specificity at `study_threshold`, lesions found
    and false findings."""
    say = log or (lambda _line: None)
    spec = replace(spec, input=replace(spec.input, min_slices=1))
    started = time.perf_counter()
    rows = []
    for study in studies:
        rows.append(_study_figures(study, network, spec))
        shape = "x".join(map(str, study.volume.shape))
        say(f"held-out study {len(rows)} ({shape}): score {rows[-1]['study_score']:.3f}")
    if not rows:
        return {"studies": 0, "seconds": 0.0, "per_study": []}
    positive = np.array([row["lesions"] > 0 for row in rows])
    scores = np.array([row["study_score"] for row in rows])
    called = scores >= study_threshold
    hits = [pair for row in rows for pair in zip(row["detected"], row["in_lung"], strict=True)]
    lung = [hit for hit, in_lung in hits if in_lung]
    soft = [hit for hit, in_lung in hits if not in_lung]
    dice = [row["dice"] for row in rows if row["dice"] is not None]
    both = positive.any() and not positive.all()
    return {
        "highest_normal_score": round(float(scores[~positive].max()), 4) if (~positive).any() else None,
        "lowest_lesion_score": round(float(scores[positive].min()), 4) if positive.any() else None,
        "studies": len(rows),
        "lesion_studies": int(positive.sum()),
        "mean_dice": round(float(np.mean(dice)), 4) if dice else None,
        "auc": round(float(roc_auc_score(positive, scores)), 4) if both else None,
        "sensitivity": round(float(called[positive].mean()), 4) if positive.any() else None,
        "specificity": round(float((~called[~positive]).mean()), 4) if (~positive).any() else None,
        "lesion_detection_lung": f"{sum(lung)}/{len(lung)}",
        "lesion_detection_soft_tissue": f"{sum(soft)}/{len(soft)}",
        "false_findings_per_study": round(sum(row["false_findings"] for row in rows) / len(rows), 3),
        "study_threshold": study_threshold,
        "seconds": round(time.perf_counter() - started, 1),
        "per_study": rows,
    }


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures without the per-study rows and timing, as a model card shows them."""
    return {k: v for k, v in figures.items() if k not in ("per_study", "seconds")}
