"""Training and evaluating the demonstration model on synthetic studies (fixtures.synthetic).

Reproducible bit for bit on one kind of processor: a fixed seed drives the weights'
initialisation and the patch sampler, the thread count is fixed and deterministic algorithms
are enforced. Another processor adds its floating-point sums in another order (its vector
width, its cache sizes) and trains other weights of like quality; pinning oneDNN, MKL and
ATen to AVX2 did not make an AMD Zen 5 give a Zen 3's weights. The model card names the
processor. The training and held-out studies come from disjoint generator seed ranges, so the
evaluation never sees a training image.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fixtures.synthetic import SyntheticStudy, make_ct_study
from inference.engine.evaluation import evaluate, held_out_studies, summary
from inference.engine.manifest import write_manifest
from inference.engine.network import DemoUNet
from inference.engine.preprocess import normalise_hu
from inference.engine.source import file_sha256
from inference.engine.types import InputSpec, ModelSpec

Log = Callable[[str], None]

WEIGHTS_NAME = "demo_unet.pt"
TRAIN_SEEDS_FROM = 1_000_000  # training studies: seeds TRAIN_SEEDS_FROM + i
HELD_OUT_SEEDS_FROM = 2_000_000  # held-out studies: seeds HELD_OUT_SEEDS_FROM + i
LARGE_SEEDS_FROM = 2_010_000  # held-out 512-pixel studies: seeds LARGE_SEEDS_FROM + i
DEMO_SPEC = ModelSpec(
    name="overread-demo-lesion",
    version="2.0.0",
    labels=("lesion",),
    threshold=0.5,
    min_finding_mm3=60.0,  # a 4.9 mm sphere: smaller specks on held-out studies were noise
    input=InputSpec(body_parts=("CHEST",)),
    batch_size=8,
    saliency_layer="decoders.1",  # half resolution: finding maps follow the finding
    hu_window=(-1000.0, 1000.0),
    study_saliency_layer="bottleneck",  # what the slice head reads
)
STUDY_THRESHOLD = 0.5  # the slice head is trained with BCE, so 0.5 is its natural cut
TRIAGE = {"urgent": 0.9, "priority": STUDY_THRESHOLD}
DISCLAIMER = "Demonstration model trained on synthetic data only. Not a medical device; not for clinical use."


@dataclass(frozen=True)
class TrainingConfig:
    """Sizes of one training run. The defaults are the shipped demo model's."""

    steps: int = 500
    batch_size: int = 16
    patch: int = 96  # training crops are patch x patch; smaller slices are used whole
    learning_rate: float = 2e-3
    train_studies: int = 48
    train_matrices: tuple[int, ...] = (128, 192, 256, 384, 512)
    train_slices: int = 40
    held_out_studies: int = 20  # half of them without lesions
    held_out_shape: tuple[int, int, int] = (48, 256, 256)  # the demo data's geometry
    held_out_spacing: tuple[float, float, float] = (2.5, 1.4, 1.4)
    large_studies: int = 4  # a second, small held-out set at the benchmark's matrix
    large_shape: tuple[int, int, int] = (32, 512, 512)
    large_spacing: tuple[float, float, float] = (2.5, 0.7, 0.7)
    base: int = 48
    depth: int = 2
    stem: int = 2  # the network works on 2x2 cells (DemoUNet)
    skips: str = "add"
    threads: int = 2


@contextmanager
def _reproducible(seed: int, threads: int) -> Iterator[None]:
    """Seeded, single-configuration torch for the block; the caller's settings come back after."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0])
            torch.set_num_threads(previous[1])


def _architecture(config: TrainingConfig) -> dict[str, Any]:
    """DemoUNet's arguments for `config` (the manifest's entry_kwargs)."""
    return {
        "base": config.base,
        "depth": config.depth,
        "classes": 1,
        "stem": config.stem,
        "skips": config.skips,
    }


def _architecture_text(config: TrainingConfig, parameters: int) -> str:
    widths = f"{config.base} to {config.base * 2**config.depth} channels"
    cells = (
        f" on {config.stem}x{config.stem}-pixel cells (pixel unshuffle in, sub-pixel convolution out)"
        if config.stem > 1
        else ""
    )
    joined = "added" if config.skips == "add" else "concatenated"
    return (
        f"2D U-Net with a slice head: {config.depth} poolings, {widths}{cells}, skip connections "
        f"{joined}; {parameters:,} parameters"
    )


def _training_study(index: int, config: TrainingConfig) -> SyntheticStudy:
    """Training study `index`: matrix, spacing and lesion count vary with it; one in four
    has no lesion."""
    rng = np.random.default_rng(TRAIN_SEEDS_FROM + index)
    matrix = config.train_matrices[index % len(config.train_matrices)]
    pixel = float(rng.uniform(0.6, 1.5))
    spacing = (float(rng.uniform(2.0, 3.0)), pixel, pixel)
    seed = TRAIN_SEEDS_FROM + index
    make = partial(
        make_ct_study, seed=seed, slices=config.train_slices, rows=matrix, columns=matrix, spacing=spacing
    )
    try:
        return make(lesions=0 if index % 4 == 0 else 1 + index % 3)
    except ValueError:  # the volume cannot hold that many: take what fits
        return make(lesions=None)


class _PatchSampler:
    """Batches of (crop, mask) from the training studies, half of the crops on a lesion."""

    def __init__(self, studies: Sequence[SyntheticStudy], patch: int, seed: int) -> None:
        self.studies = studies
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        self.lesion_slices = [np.flatnonzero(s.mask.any(axis=(1, 2))) for s in studies]

    def _one(self) -> tuple[np.ndarray, np.ndarray]:
        rng, patch = self.rng, self.patch
        index = int(rng.integers(len(self.studies)))
        study, on_lesion = self.studies[index], self.lesion_slices[index]
        rows, columns = study.volume.shape[1:]
        if on_lesion.size and rng.random() < 0.5:
            z = int(rng.choice(on_lesion))
            ys, xs = np.nonzero(study.mask[z])
            pick = int(rng.integers(ys.size))
            top = int(ys[pick]) - int(rng.integers(patch // 8, patch - patch // 8))
            left = int(xs[pick]) - int(rng.integers(patch // 8, patch - patch // 8))
        else:
            z = int(rng.integers(study.volume.shape[0]))
            top, left = int(rng.integers(rows - patch + 1)), int(rng.integers(columns - patch + 1))
        top, left = min(max(top, 0), rows - patch), min(max(left, 0), columns - patch)
        window = (slice(top, top + patch), slice(left, left + patch))
        image, mask = study.volume[z][window], study.mask[z][window] > 0
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return image, mask

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self._one() for _ in range(size)]
        hu = torch.from_numpy(np.stack([p[0] for p in pairs]).astype(np.float32))
        masks = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32))
        return hu.unsqueeze(1), masks.unsqueeze(1)


def _loss(logits: torch.Tensor, slice_logit: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice (over the whole batch, so lesion-free crops count) for the mask, BCE
    for the slice head."""
    probability = torch.sigmoid(logits)
    dice = (2 * (probability * masks).sum() + 1) / (probability.sum() + masks.sum() + 1)
    present = masks.amax(dim=(1, 2, 3)).unsqueeze(1)
    return (
        F.binary_cross_entropy_with_logits(logits, masks)
        + (1 - dice)
        + 0.5 * F.binary_cross_entropy_with_logits(slice_logit, present)
    )


def train_network(
    *, seed: int, config: TrainingConfig, log: Log | None = None
) -> tuple[DemoUNet, dict[str, Any]]:
    """Trains a DemoUNet; returns it (eval mode, CPU) and facts about the run for the card."""
    say = log or (lambda _line: None)
    if min(config.train_matrices) < config.patch:
        raise ValueError(f"training images ({min(config.train_matrices)}) are smaller than the patch")
    with _reproducible(seed, config.threads):
        started = time.perf_counter()
        studies = [_training_study(i, config) for i in range(config.train_studies)]
        generated = time.perf_counter() - started
        say(f"generated {len(studies)} training studies in {generated:.1f}s")
        network = DemoUNet(**_architecture(config))
        network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        network.train()
        optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / max(1, config.steps)))
        )
        sampler = _PatchSampler(studies, config.patch, seed)
        running = 0.0
        for step in range(1, config.steps + 1):
            hu, masks = sampler.batch(config.batch_size)
            x = normalise_hu(hu, DEMO_SPEC.hu_window).contiguous(memory_format=torch.channels_last)
            logits, slice_logit = network(x)
            loss = _loss(logits, slice_logit, masks)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            value = float(loss.detach())
            running = value if step == 1 else 0.95 * running + 0.05 * value
            if step % 25 == 0 or step == config.steps:
                say(f"step {step}/{config.steps} loss {running:.3f} ({time.perf_counter() - started:.0f}s)")
        network.eval()
    facts = {
        "train_seconds": round(time.perf_counter() - started, 1),
        "generation_seconds": round(generated, 1),
        "lesion_studies": sum(1 for s in studies if s.lesions),
        "lesions": sum(len(s.lesions) for s in studies),
        "parameters": sum(parameter.numel() for parameter in network.parameters()),
    }
    return network, facts


def _model_card(
    seed: int, config: TrainingConfig, facts: dict[str, Any], figures: dict[str, Any], large: dict[str, Any]
) -> dict[str, Any]:
    return {
        "intended_use": (
            "Shows how Overread runs a second-reader model: finding masks, heatmaps and a triage "
            "score on the synthetic demonstration studies."
        ),
        "architecture": _architecture_text(config, facts["parameters"]),
        "demonstration": True,
        "statement": DISCLAIMER,
        "training_data": {
            "generator": "fixtures.synthetic.make_ct_study",
            "seeds": f"{TRAIN_SEEDS_FROM} to {TRAIN_SEEDS_FROM + config.train_studies - 1}",
            "studies": config.train_studies,
            "lesion_studies": facts["lesion_studies"],
            "lesions": facts["lesions"],
            "sizes": f"{config.train_slices} slices of {', '.join(map(str, config.train_matrices))} squared, "
            "pixel spacing 0.6-1.5 mm, slice spacing 2-3 mm",
            "samples": f"{config.steps} steps of {config.batch_size} crops of {config.patch}x{config.patch}, "
            "half centred on a lesion, random left-right flips",
        },
        "held_out_data": {
            "generator": "fixtures.synthetic.make_ct_study",
            "seeds": f"{HELD_OUT_SEEDS_FROM} to {HELD_OUT_SEEDS_FROM + config.held_out_studies - 1}",
            "studies": config.held_out_studies,
            "shape": list(config.held_out_shape),
            "spacing_mm": list(config.held_out_spacing),
            "studies_512": config.large_studies,
            "seeds_512": f"{LARGE_SEEDS_FROM} to {LARGE_SEEDS_FROM + config.large_studies - 1}",
            "shape_512": list(config.large_shape),
            "spacing_mm_512": list(config.large_spacing),
            "lesions": "even-numbered studies hold 1 to 3 lesions, odd-numbered none",
        },
        "evaluation": summary(figures),
        "evaluation_512": summary(large) if config.large_studies else None,
        "known_limits": [
            "Trained and tested only on synthetic analytic phantoms: spherical lesions in lung or "
            "soft tissue, no vessels, airways, organs, motion or reconstruction artefacts.",
            "Works slice by slice (2D); lesions are joined into 3D findings afterwards.",
            "Sees 96-pixel crops of 128 to 512 pixel images and has a receptive field of about 90 "
            "pixels: lesions much wider than that (the generator makes none up to 512 pixels) are untested.",
            "Evaluated at 512 pixels on a few short studies only (evaluation_512).",
            "The held-out set holds few subtle soft-tissue lesions (+60 to +120 HU); small soft-tissue "
            "noise bumps are its usual false findings.",
            "Scores are not calibrated probabilities of disease.",
        ],
        "thresholds": (
            f"Study threshold {STUDY_THRESHOLD} (the slice head's BCE cut) and triage urgent "
            f"{TRIAGE['urgent']} / priority {TRIAGE['priority']} were set before evaluation, not tuned "
            "on it; evaluation lists the highest normal and the lowest lesion study score held out."
        ),
        "training": {
            "seed": seed,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            "seconds": facts["train_seconds"],
            "evaluation_seconds": round(figures["seconds"] + large["seconds"], 1),
            "machine": f"{_processor()}, {config.threads} CPU threads, torch {torch.__version__}",
            "reproduce": f"python manage.py train_demo_model --seed {seed} --steps {config.steps}",
            "loss": "BCE + soft Dice on the mask, 0.5 x BCE on the slice head; Adam, cosine schedule",
        },
    }


def _processor() -> str:
    """The processor's kind, as far as it decides the training's rounding: vendor, family and
    model (Linux), architecture and the vector instructions torch's kernels use."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown processor"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{name}, {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def train_demo_model(
    *,
    seed: int,
    out_dir: Path,
    steps: int = TrainingConfig.steps,
    progress: Log | None = None,
    config: TrainingConfig | None = None,
) -> dict[str, Any]:
    """Trains the demo model, evaluates it on held-out synthetic studies and writes
    `demo_unet.pt` (a state_dict) and `model.json` (manifest with model card) to `out_dir`.

    Returns the manifest as written. `progress` receives one human-readable line at a time.
    """
    config = replace(config or TrainingConfig(), steps=steps)
    network, facts = train_network(seed=seed, config=config, log=progress)
    check = partial(evaluate, network, spec=DEMO_SPEC, study_threshold=STUDY_THRESHOLD, log=progress)
    figures = check(
        held_out_studies(
            config.held_out_studies, HELD_OUT_SEEDS_FROM, config.held_out_shape, config.held_out_spacing
        )
    )
    large = check(
        held_out_studies(config.large_studies, LARGE_SEEDS_FROM, config.large_shape, config.large_spacing)
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / WEIGHTS_NAME
    torch.save({k: v.detach().contiguous() for k, v in network.state_dict().items()}, weights)
    manifest = {
        "name": DEMO_SPEC.name,
        "version": DEMO_SPEC.version,
        "task": "segmentation+classification",
        "format": "state_dict",
        "weights": WEIGHTS_NAME,
        "sha256": file_sha256(weights),
        "entry_point": "inference.engine.network:DemoUNet",
        "entry_kwargs": _architecture(config),
        "input_spec": DEMO_SPEC.input.to_dict(),
        "labels": list(DEMO_SPEC.labels),
        "threshold": DEMO_SPEC.threshold,
        "min_finding_mm3": DEMO_SPEC.min_finding_mm3,
        "batch_size": DEMO_SPEC.batch_size,
        "hu_window": list(DEMO_SPEC.hu_window),
        "study_threshold": STUDY_THRESHOLD,
        "triage": dict(TRIAGE),
        "saliency_layer": DEMO_SPEC.saliency_layer,
        "study_saliency_layer": DEMO_SPEC.study_saliency_layer,
        "model_card": _model_card(seed, config, facts, figures, large),
    }
    write_manifest(out_dir, manifest)
    return manifest
