"""A job's derived DICOM objects, written by the shared writer (inference.derived).

Each object is a series of its own in the source study: the SEG holds a segment per
finding, the Parametric Map the study-level attention (saliency) map on the slices it was
computed on, and the SR (TID 1500) the findings with their measurements, referencing the
SEG's segments. UIDs come from the job (`uid`), the content date and time from when the job
was created, so a redelivered job writes byte-identical objects under the same UIDs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from pydicom.dataset import Dataset

from inference.derived import (
    AlgorithmInfo,
    Device,
    SegmentSpec,
    derived_uid,
    findings_sr,
    parametric_map,
    segmentation,
    to_part10_bytes,
)
from inference.engine.types import InferenceResult, Volume
from inference.models import InferenceJob, JobOutput

# Series numbers of the derived series, high so they sort after the acquisition's.
_SERIES_NUMBER = {JobOutput.Kind.SEG: 9001, JobOutput.Kind.PARAMETRIC_MAP: 9002, JobOutput.Kind.SR: 9003}

Part10 = tuple[str, bytes]


def derived_objects(
    *,
    job: InferenceJob,
    source: Sequence[Dataset],
    volume: Volume,
    result: InferenceResult,
    uid: Callable[[InferenceJob, str], str],
) -> Iterator[tuple[str, Part10]]:
    """(kind, (SOP Instance UID, Part 10 bytes)) for each object the job writes: a SEG only
    when there are findings (a SEG must describe at least one segment), a Parametric Map of
    the slices the heatmap was computed on when it was computed on any, always the SR."""
    model = job.model_version
    device = Device(
        name=model.name,
        version=model.version,
        uid=derived_uid("model", model.name, model.version, model.weights_sha256),
        model_card=f"{model.name} {model.version} model card"
        + (" (demonstration model)" if model.demonstration else ""),
    )
    algorithm = AlgorithmInfo.for_device(device, parameters={"threshold": f"{model.threshold:g}"})
    when = job.created_at
    slice_uids = list(volume.geometry.sop_instance_uids)
    Kind = JobOutput.Kind

    def ids(kind: str) -> dict[str, object]:
        return {
            "series_uid": uid(job, f"{kind}/series"),
            "sop_uid": uid(job, kind),
            "series_number": _SERIES_NUMBER[Kind(kind)],
            "content_datetime": when,
        }

    seg = None
    if result.findings:
        seg = segmentation(
            source=source,
            mask=result.mask,
            segments=[SegmentSpec.for_finding(finding) for finding in result.findings],
            author=device,
            algorithm=algorithm,
            slice_uids=slice_uids,
            **ids(Kind.SEG),  # type: ignore[arg-type]
        )
    if seg is not None:
        yield Kind.SEG, (str(seg.SOPInstanceUID), to_part10_bytes(seg))
    if result.heatmap_slices != []:  # a map computed on some slice
        pmap = parametric_map(
            source=source,
            heatmap=result.heatmap,
            author=device,
            slice_uids=slice_uids,
            planes=result.heatmap_slices,
            **ids(Kind.PARAMETRIC_MAP),  # type: ignore[arg-type]
        )
        yield Kind.PARAMETRIC_MAP, (str(pmap.SOPInstanceUID), to_part10_bytes(pmap))
    sr = findings_sr(
        source=source,
        seg=seg,
        findings=result.findings if seg is not None else [],
        study_score=result.study_score,
        observer=device,
        algorithm=algorithm,
        **ids(Kind.SR),  # type: ignore[arg-type]
    )
    yield Kind.SR, (str(sr.SOPInstanceUID), to_part10_bytes(sr))
