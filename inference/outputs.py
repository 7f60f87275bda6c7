"""What a job keeps: findings rows, the viewer's arrays, and the derived DICOM objects.

All of it is keyed by the job. Writing starts by removing whatever an earlier attempt of
the same job left (a redelivery after a worker died), so outputs are replaced, never
duplicated. The DICOM objects get UIDs derived from the job's uid_root, so a redelivery
writes the same UIDs.

Arrays are uint8, C order (slice, row, column), stored deflated and flushed at every slice
(inference.arrays): the viewer fetches a whole series as it is stored, or one slice. The
heatmap holds round(255 * saliency); the mask holds k on the voxels of finding k. A shadow
model's objects are written beside the job but kept out of the DICOM index, so no reader
sees them over DICOMweb.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from typing import IO, cast

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from pydicom.dataset import Dataset

from inference.arrays import pack, read_slices
from inference.derived import quantize
from inference.derived_job import derived_objects
from inference.engine.types import InferenceResult, Volume
from inference.models import Finding, InferenceJob, JobOutput, ModelVersion
from viewer.ingest.rows import SeriesProducer
from viewer.ingest.service import ingest_file
from viewer.models import Instance, Series
from viewer.services import instances_delete

Kind = JobOutput.Kind


def job_uid(job: InferenceJob, what: str) -> str:
    """A 2.25 UID for one object of this job (PS3.5 B.2), the same on every attempt."""
    return f"2.25.{uuid.uuid5(job.uid_root, what).int}"


def outputs_write(
    *, job: InferenceJob, volume: Volume, source: Sequence[Dataset], result: InferenceResult
) -> None:
    """Replaces the job's outputs with these (see the module docstring)."""
    outputs_discard(job=job)
    geometry = volume.geometry
    _, rows, columns = result.mask.shape
    written = [
        _save_array(job, Kind.HEATMAP, quantize(result.heatmap, 255, np.uint8)),
        _save_array(job, Kind.MASK, result.mask.astype(np.uint8, copy=False)),
        _save(job, Kind.FINDING_HEATMAPS, _finding_heatmaps_npz(result)),
    ]
    indexed = job.model_version.status != ModelVersion.Status.SHADOW
    for kind, dataset in derived_objects(job=job, source=source, volume=volume, result=result, uid=job_uid):
        written.append(_save_dicom(job, kind, dataset, indexed=indexed))
    with transaction.atomic():
        JobOutput.objects.bulk_create(written)
        Finding.objects.bulk_create(
            Finding(
                job=job,
                index=f.index,
                label=f.label,
                bbox=[list(r) for r in f.bbox],
                centroid_voxel=list(f.centroid_voxel),
                centroid_mm=list(f.centroid_mm),
                volume_mm3=f.volume_mm3,
                voxel_count=f.voxel_count,
                max_probability=f.max_probability,
                mean_probability=f.mean_probability,
            )
            for f in result.findings
        )
        InferenceJob.objects.filter(pk=job.pk).update(
            slice_uids=list(geometry.sop_instance_uids), rows=rows, columns=columns
        )


def outputs_discard(*, job: InferenceJob) -> None:
    """Removes everything the job wrote (rows, files, indexed DICOM objects)."""
    outputs = list(JobOutput.objects.filter(job=job))
    indexed = [o.sop_instance_uid for o in outputs if o.indexed and o.sop_instance_uid]
    # An attempt that died between storing a DICOM object and recording it left the object
    # under the job's UIDs without an output row: remove those too.
    indexed += [job_uid(job, kind) for kind in JobOutput.DICOM_KINDS]
    instances_delete(sop_instance_uids=indexed)
    with transaction.atomic():
        Finding.objects.filter(job=job).delete()
        JobOutput.objects.filter(job=job).delete()
    for key in {o.storage_key for o in outputs if not o.indexed} | {_key(job, kind) for kind in Kind.values}:
        default_storage.delete(key)


def output_open(output: JobOutput) -> IO[bytes]:
    """The output's bytes (arrays, or a DICOM object kept beside the job)."""
    return cast(IO[bytes], default_storage.open(output.storage_key, "rb"))


def output_slices(output: JobOutput, start: int, stop: int) -> bytes:
    """Slices start..stop-1 of an array output, raw uint8 (ArrayError when the file does not
    hold them)."""
    job = output.job
    with output_open(output) as handle:
        return read_slices(handle, output.slice_offsets, job.rows * job.columns, start, stop)


def _key(job: InferenceJob, kind: str) -> str:
    suffix = {Kind.FINDING_HEATMAPS: "npz", Kind.HEATMAP: "u8.gz", Kind.MASK: "u8.gz"}.get(Kind(kind), "dcm")
    return f"inference/jobs/{job.pk}/{kind}.{suffix}"


def _save(job: InferenceJob, kind: str, content: bytes) -> JobOutput:
    key = _key(job, kind)
    default_storage.delete(key)
    saved = default_storage.save(key, ContentFile(content))
    return JobOutput(job=job, kind=kind, storage_key=saved, size_bytes=len(content))


def _save_array(job: InferenceJob, kind: str, array: np.ndarray) -> JobOutput:
    content, offsets = pack(array)
    output = _save(job, kind, content)
    output.slice_offsets = offsets
    return output


def _save_dicom(job: InferenceJob, kind: str, part10: tuple[str, bytes], *, indexed: bool) -> JobOutput:
    sop_uid, content = part10
    if not indexed:
        output = _save(job, kind, content)
        output.sop_instance_uid = sop_uid
        return output
    outcome = ingest_file(
        source=io.BytesIO(content),
        name=f"{kind} of inference job {job.pk}",
        origin="derived",
        producer=SeriesProducer(kind=Series.Producer.AI_JOB, id=job.pk),
    )
    if outcome.status == "rejected":
        raise RuntimeError(f"the DICOM store refused the job's {kind}: {outcome.reason}")
    assert outcome.instance_pk is not None  # stored or duplicate
    instance = Instance.objects.only("storage_key", "size_bytes").get(pk=outcome.instance_pk)
    return JobOutput(
        job=job,
        kind=kind,
        storage_key=instance.storage_key,
        sop_instance_uid=sop_uid,
        indexed=True,
        size_bytes=instance.size_bytes,
    )


def _finding_heatmaps_npz(result: InferenceResult) -> bytes:
    buffer = io.BytesIO()
    arrays = {
        str(index): np.rint(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
        for index, heatmap in result.finding_heatmaps.items()
    }
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
