"""The four index rows of an instance: computed first, then written in the caller's transaction.

The first instance of a study sets the patient's and the study's attributes;
later instances must name the same patient (a study belongs to one patient)
and the same study for their series.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from viewer.ingest import index
from viewer.ingest.errors import FailureReason, Rejected
from viewer.ingest.spool import LocalFile
from viewer.ingest.validate import ValidInstance
from viewer.models import Instance, Patient, Series, Study

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexRows:
    """Every field of the four rows, computed before anything is written."""

    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]

    @classmethod
    def of(cls, instance: ValidInstance) -> IndexRows:
        ds = instance.dataset
        try:
            return cls(
                patient=index.patient_fields(ds),
                study=index.study_fields(ds),
                series=index.series_fields(ds),
                instance=index.instance_fields(instance),
            )
        except Rejected:
            raise
        except Exception as exc:  # an element pydicom cannot convert
            logger.exception("unexpected error while indexing an offered file")
            raise Rejected(
                f"the data set cannot be indexed: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None


@dataclass(frozen=True)
class SeriesProducer:
    """What in Overread wrote a series: `kind` a Series.Producer value, `id` its primary key."""

    kind: str
    id: int


def index_rows_write(
    rows: IndexRows,
    *,
    key: str,
    local: LocalFile,
    instance: ValidInstance,
    producer: SeriesProducer | None = None,
) -> int:
    patient_keys = {"patient_id": rows.patient["patient_id"], "issuer": rows.patient["issuer"]}
    patient, _ = Patient.objects.get_or_create(**patient_keys, defaults=rows.patient)
    study, _ = Study.objects.get_or_create(
        study_uid=instance.study_uid, defaults={**rows.study, "patient": patient}
    )
    if study.patient_id != patient.pk:
        raise Rejected(
            f"study {instance.study_uid} belongs to another patient: it is stored for another "
            f"Patient ID than {patient.patient_id!r}",
            FailureReason.PROCESSING_FAILURE,
        )
    made_by = {"producer_kind": producer.kind, "producer_id": producer.id} if producer else {}
    series, _ = Series.objects.get_or_create(
        series_uid=instance.series_uid, defaults={**rows.series, **made_by, "study": study}
    )
    if series.study_id != study.pk:
        raise Rejected(
            f"series {instance.series_uid} belongs to another study than {instance.study_uid}",
            FailureReason.PROCESSING_FAILURE,
        )
    row = Instance.objects.create(
        series=series, storage_key=key, size_bytes=local.size, sha256=local.sha256, **rows.instance
    )
    study_modalities_refresh(study)
    return row.pk


def study_modalities_refresh(study: Study) -> None:
    """Recomputes ModalitiesInStudy (and the acquired series' modalities) from the series,
    under the study's row lock."""
    locked = Study.objects.select_for_update().only("pk", "modalities").get(pk=study.pk)
    series = list(Series.objects.filter(study=locked).values_list("modality", "producer_kind"))
    every = {modality for modality, _ in series} - {""}
    acquired = {modality for modality, producer in series if not producer} - {""}
    Study.objects.filter(pk=locked.pk).update(
        modalities="\\".join(sorted(every))[:128],
        acquired_modalities="\\".join(sorted(acquired))[:128],
        updated_at=timezone.now(),
    )
