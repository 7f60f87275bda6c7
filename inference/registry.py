"""The model registry: adding a model version, and turning one into what the engine runs.

Weights are kept in the media storage under their SHA-256 (so two versions with the same
weights share a file and a changed file can never pass as the registered one); workers read
them through a local path, downloading once from object storage when there is no local disk.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from audit.codes import Action, EventID, EventType
from audit.services import audit_record
from inference.engine.manifest import read_manifest
from inference.engine.source import NetworkSource, file_sha256
from inference.engine.types import InputSpec, ModelSpec
from inference.models import ModelVersion

BASE_DIR = Path(settings.BASE_DIR)
DEMO_MANIFEST = BASE_DIR / "fixtures" / "demo_model" / "model.json"


class RegistryError(Exception):
    """A model cannot be registered; the message says what is wrong with it."""


@dataclass(frozen=True)
class ModelDescription:
    """Everything `model_register` needs, from a manifest file or from command-line flags."""

    name: str
    version: str
    format: str
    weights: Path
    labels: list[str]
    threshold: float
    study_threshold: float
    triage_urgent: float
    triage_priority: float
    entry_point: str = ""
    entry_kwargs: dict[str, Any] = field(default_factory=dict)
    input_spec: dict[str, Any] = field(default_factory=dict)
    min_finding_mm3: float = 0.0
    batch_size: int = 8
    saliency_layer: str = ""
    study_saliency_layer: str = ""
    hu_window: tuple[float, float] = (-1000.0, 1000.0)
    model_card: dict[str, Any] = field(default_factory=dict)
    demonstration: bool = False
    sha256: str = ""  # when given, the weights must match it

    @classmethod
    def from_manifest(cls, path: Path) -> ModelDescription:
        """Reads a model.json manifest (the engine's format: inference.engine.manifest)."""
        try:
            manifest = read_manifest(path)
        except (OSError, ValueError, TypeError) as exc:
            raise RegistryError(f"cannot read the manifest {path}: {exc}") from exc
        spec, source, card = manifest.spec, manifest.source, manifest.data.get("model_card") or {}
        return cls(
            name=spec.name,
            version=spec.version,
            format=source.format,
            weights=source.weights.resolve(),
            labels=list(spec.labels),
            threshold=spec.threshold,
            study_threshold=manifest.study_threshold,
            triage_urgent=manifest.triage.get("urgent", 1.0),
            triage_priority=manifest.triage.get("priority", manifest.study_threshold),
            entry_point=source.entry_point,
            entry_kwargs=dict(source.kwargs),
            input_spec=spec.input.to_dict(),
            min_finding_mm3=spec.min_finding_mm3,
            batch_size=spec.batch_size,
            saliency_layer=spec.saliency_layer,
            study_saliency_layer=spec.study_saliency_layer,
            hu_window=spec.hu_window,
            model_card=dict(card),
            demonstration=bool(card.get("demonstration", False)),
            sha256=source.sha256,
        )


def model_register(*, description: ModelDescription, status: str, user: Any = None) -> ModelVersion:
    """Checks a model end to end (weights hash, loading, the two-output forward) and registers it.

    The weights are loaded and run on a small input before anything is saved, so a model that
    cannot run is refused here, with the reason, rather than failing every job later.
    """
    if status not in ModelVersion.Status.values:
        raise RegistryError(f"status must be one of {', '.join(ModelVersion.Status.values)}, not {status!r}")
    sha256 = _sha256_file(description.weights)
    if description.sha256 and description.sha256 != sha256:
        raise RegistryError(
            f"the weights file {description.weights} has SHA-256 {sha256}, not {description.sha256} "
            "as the manifest says: it is not the file the manifest describes"
        )
    if not description.model_card:
        raise RegistryError(
            "a model card is required (intended use, training data, known limits, evaluation figures): "
            "give one in the manifest or with --card FILE.json"
        )
    if ModelVersion.objects.filter(name=description.name, version=description.version).exists():
        raise RegistryError(f"{description.name} {description.version} is already registered")
    model = _unsaved(description, status=status, sha256=sha256, user=user)
    try:
        model.full_clean()
    except ValidationError as exc:
        raise RegistryError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
    _check_runs(description, sha256)
    with transaction.atomic():
        if not default_storage.exists(model.weights_key):
            with description.weights.open("rb") as handle:
                default_storage.save(model.weights_key, File(handle))
        model.save()
        audit_record(
            event=EventID.APPLICATION_ACTIVITY,
            event_type=EventType.SOFTWARE_CONFIGURATION,
            action=Action.CREATE,
            user=user,
            username="" if user else "os:register_model",
            model_version=str(model),
            detail={"status": status, "sha256": sha256, "demonstration": model.demonstration},
        )
    return model


def model_status_set(*, model: ModelVersion, status: str, user: Any = None) -> ModelVersion:
    """Makes a model active, shadow or retired (audited)."""
    if status not in ModelVersion.Status.values:
        raise RegistryError(f"status must be one of {', '.join(ModelVersion.Status.values)}, not {status!r}")
    previous = model.status
    ModelVersion.objects.filter(pk=model.pk).update(status=status)
    model.status = status
    audit_record(
        event=EventID.APPLICATION_ACTIVITY,
        event_type=EventType.SOFTWARE_CONFIGURATION,
        action=Action.UPDATE,
        user=user,
        model_version=str(model),
        detail={"status": status, "previous": previous},
    )
    return model


def model_spec(model: ModelVersion) -> ModelSpec:
    """The engine's view of a registered model."""
    return ModelSpec(
        name=model.name,
        version=model.version,
        labels=tuple(model.labels),
        threshold=model.threshold,
        min_finding_mm3=model.min_finding_mm3,
        input=InputSpec.from_dict(model.input_spec),
        batch_size=model.batch_size,
        saliency_layer=model.saliency_layer,
        study_saliency_layer=model.study_saliency_layer,
        hu_window=_window(model.hu_window or (-1000.0, 1000.0)),
    )


def model_network_source(model: ModelVersion) -> NetworkSource:
    """Where the engine finds the weights: a local file, fetched from the storage once."""
    return NetworkSource(
        weights=_local_weights(model),
        sha256=model.weights_sha256,
        format=model.format,  # type: ignore[arg-type]  # a Format choice
        entry_point=model.entry_point,
        kwargs=dict(model.entry_kwargs),
    )


def _unsaved(description: ModelDescription, *, status: str, sha256: str, user: Any) -> ModelVersion:
    return ModelVersion(
        name=description.name,
        version=description.version,
        status=status,
        format=description.format,
        weights_key=f"models/{sha256}.pt",
        weights_sha256=sha256,
        entry_point=description.entry_point,
        entry_kwargs=description.entry_kwargs,
        input_spec=InputSpec.from_dict(description.input_spec).to_dict(),
        labels=description.labels,
        threshold=description.threshold,
        study_threshold=description.study_threshold,
        triage_urgent=description.triage_urgent,
        triage_priority=description.triage_priority,
        min_finding_mm3=description.min_finding_mm3,
        batch_size=description.batch_size,
        saliency_layer=description.saliency_layer,
        study_saliency_layer=description.study_saliency_layer,
        hu_window=list(description.hu_window),
        model_card=description.model_card,
        demonstration=description.demonstration,
        registered_by=user if getattr(user, "is_authenticated", False) else None,
    )


def _check_runs(description: ModelDescription, sha256: str) -> None:
    import torch

    from inference.engine.loading import load_network

    if description.format == ModelVersion.Format.STATE_DICT and ":" not in description.entry_point:
        raise RegistryError("a state_dict model needs an entry point such as package.module:ClassName")
    source = NetworkSource(
        weights=description.weights,
        sha256=sha256,
        format=description.format,  # type: ignore[arg-type]  # checked by full_clean
        entry_point=description.entry_point,
        kwargs=description.entry_kwargs,
    )
    try:
        network = load_network(source, torch.device("cpu"))
        with torch.inference_mode():
            outputs = network(torch.zeros(1, 1, 64, 64).contiguous(memory_format=torch.channels_last))
    except Exception as exc:  # anything a foreign model raises is the model's fault, reported as such
        raise RegistryError(f"the model does not load and run: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(outputs, tuple | list) and len(outputs) == 2):
        raise RegistryError("the network must return (segmentation logits, slice logit)")
    seg, score = outputs
    if tuple(seg.shape) != (1, len(description.labels), 64, 64) or tuple(score.shape) != (1, 1):
        raise RegistryError(
            f"for a 1x1x64x64 input the network returned {tuple(seg.shape)} and {tuple(score.shape)}; "
            f"expected (1, {len(description.labels)}, 64, 64) (one channel per label) and (1, 1)"
        )


def _window(value: Any) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not low < high:
        raise RegistryError(f"hu_window must be [low, high] with low < high, not {value!r}")
    return low, high


def _local_weights(model: ModelVersion) -> Path:
    try:
        return Path(default_storage.path(model.weights_key))
    except NotImplementedError:  # object storage: keep a local copy per worker machine
        cached = Path(settings.VAR_DIR) / "model-cache" / f"{model.weights_sha256}.pt"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".part")
            with default_storage.open(model.weights_key, "rb") as source, partial.open("wb") as target:
                shutil.copyfileobj(source, target)
            partial.replace(cached)
        return cached


def _sha256_file(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError as exc:
        raise RegistryError(f"cannot read the weights file {path}: {exc.strerror or exc}") from exc
