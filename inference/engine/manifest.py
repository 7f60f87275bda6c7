"""A model's manifest (`model.json`): its weights, how to build it, what it accepts, its card.

The manifest is the unit an admin registers: the engine reads it into a ModelSpec and a
NetworkSource; the Django side also shows its model card and uses its thresholds for triage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inference.engine.source import NetworkSource
from inference.engine.types import InputSpec, ModelSpec

MANIFEST_NAME = "model.json"


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: what the engine needs plus the thresholds and card around it."""

    spec: ModelSpec
    source: NetworkSource
    study_threshold: float  # study score at or above which a study is called positive
    triage: dict[str, float]  # {"urgent": x, "priority": y}: study score at or above each
    data: dict[str, Any]  # the whole JSON document, model card included


def read_manifest(path: Path) -> Manifest:
    """Reads `model.json` (or the directory holding it); weights paths are relative to it.

    The network's constructor arguments are under "entry_kwargs", the InputSpec under
    "input_spec" (the keys inference.registry reads too).

    Raises ValueError naming the missing key when the document is incomplete.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    try:
        spec = ModelSpec(
            name=data["name"],
            version=data["version"],
            labels=tuple(data["labels"]),
            threshold=float(data["threshold"]),
            min_finding_mm3=float(data.get("min_finding_mm3", 0.0)),
            input=InputSpec.from_dict(data.get("input_spec", {})),
            batch_size=int(data.get("batch_size", 8)),
            saliency_layer=str(data.get("saliency_layer", "")),
            study_saliency_layer=str(data.get("study_saliency_layer", "")),
        )
        if "hu_window" in data:
            low, high = data["hu_window"]
            spec = replace(spec, hu_window=(float(low), float(high)))
        source = NetworkSource(
            weights=path.parent / data["weights"],
            sha256=data["sha256"],
            format=data["format"],
            entry_point=data.get("entry_point", ""),
            kwargs=dict(data.get("entry_kwargs", {})),
        )
        study_threshold = float(data["study_threshold"])
        triage = {key: float(value) for key, value in data["triage"].items()}
    except KeyError as error:
        raise ValueError(f"manifest {path} lacks {error.args[0]!r}") from error
    return Manifest(spec, source, study_threshold, triage, data)


def write_manifest(directory: Path, data: dict[str, Any]) -> Path:
    """Writes `data` as `model.json` in `directory` (sorted keys, so diffs stay readable)."""
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
