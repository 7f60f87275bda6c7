"""The engine's vocabulary: what goes in (a volume, a model's specification) and what comes out.

Plain dataclasses over numpy arrays, no Django: the Django side stores and shows them, the
derived-DICOM writers encode them, the bench times them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


class InputError(ValueError):
    """The series is not something this model can read (wrong modality, missing slices, no
    pixels, geometry out of range). The message is shown to readers and admins as it is."""


@dataclass(frozen=True)
class InputSpec:
    """What a model accepts. A series outside it is not sent to the model (or, when it is,
    the job fails with an InputError naming the mismatch)."""

    modality: str = "CT"
    sop_class_uids: tuple[str, ...] = (CT_IMAGE_STORAGE,)
    body_parts: tuple[str, ...] = ()  # BodyPartExamined values accepted; empty: any
    min_slices: int = 8
    pixel_spacing_mm: tuple[float, float] = (0.3, 2.5)  # accepted in-plane spacing range
    slice_spacing_mm: tuple[float, float] = (0.5, 6.0)  # accepted slice spacing range
    matrix: tuple[int, int] = (64, 1024)  # accepted rows/columns range

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        known: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in _INPUT_FIELDS
        }
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_INPUT_FIELDS = set(InputSpec.__dataclass_fields__)


@dataclass(frozen=True)
class ModelSpec:
    """What the engine needs to know about a model beyond its weights."""

    name: str
    version: str
    labels: tuple[str, ...] = ("lesion",)  # one per output channel of the segmentation head
    threshold: float = 0.5  # per-voxel probability at or above which a voxel is in the mask
    min_finding_mm3: float = 0.0  # connected components smaller than this are dropped
    input: InputSpec = field(default_factory=InputSpec)
    batch_size: int = 8  # slices per forward pass on a GPU (see slices_per_pass)
    saliency_layer: str = ""  # module path for Grad-CAM in eager networks; "" uses input gradients
    hu_window: tuple[float, float] = (-1000.0, 1000.0)  # HU clipped to this and scaled to -1..1
    study_saliency_layer: str = ""  # Grad-CAM layer for the slice-logit target; "": saliency_layer

    def slices_per_pass(self, device_type: str) -> int:
        """Slices per forward (and saliency) pass: `batch_size` on a GPU; one on a CPU, where a
        512x512 slice's activations (16 channels of fp32: 16 MB a layer) already fill the
        caches and more slices only spill them (1.6x slower at 8 on the 2-core machine,
        docs/benchmarks.md)."""
        return 1 if device_type == "cpu" else max(1, self.batch_size)


@dataclass(frozen=True)
class Geometry:
    """Where the decoded volume lies in the patient. Slice k came from sop_instance_uids[k]."""

    spacing: tuple[float, float, float]  # mm (z, y, x); z is the distance between slice positions
    origin: tuple[float, float, float]  # ImagePositionPatient of slice 0, mm (x, y, z patient)
    orientation: tuple[float, float, float, float, float, float]  # ImageOrientationPatient
    sop_instance_uids: tuple[str, ...]
    frame_of_reference_uid: str = ""


@dataclass(frozen=True)
class Volume:
    hu: np.ndarray  # float32 (z, y, x) in Hounsfield units, slices ordered along the normal
    geometry: Geometry


@dataclass(frozen=True)
class Finding:
    """One connected component of the thresholded probability map."""

    index: int  # 1-based; the value of this finding's voxels in InferenceResult.mask
    label: str
    bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]  # half-open (z, y, x) voxel ranges
    centroid_voxel: tuple[float, float, float]  # (z, y, x)
    centroid_mm: tuple[float, float, float]  # patient coordinates (x, y, z)
    volume_mm3: float
    voxel_count: int
    max_probability: float
    mean_probability: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bbox"] = [list(r) for r in self.bbox]
        return data


@dataclass
class InferenceResult:
    probability: np.ndarray  # float32 (z, y, x), 0..1
    mask: np.ndarray  # uint8 (z, y, x): 0 background, k for findings[k - 1]
    findings: list[Finding]
    study_score: float  # 0..1, for triage
    slice_scores: np.ndarray  # float32 (z,), 0..1
    heatmap: np.ndarray  # float32 (z, y, x), 0..1: study-level saliency
    finding_heatmaps: dict[int, np.ndarray]  # finding index -> float32 0..1 over its bbox
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    # The slices the study heatmap was computed on (explained, or between two explained ones),
    # ascending: elsewhere it is 0 because it was not computed. None: every slice.
    heatmap_slices: list[int] | None = None
    device: str = "cpu"
