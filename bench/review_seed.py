"""The review benchmark's data: one reading project of many studies, and readers at work.

Rows are bulk-inserted (no DICOM ingest, no inference run): patients, studies, one CT series
each, a succeeded AI job on every study the AI triaged (urgent, priority or routine; the rest
have no AI result), the worklist rows and a round-robin assignment of each study. Each reader
has a token, a signed-in session and one reading in `ai_revealed` on a study of its own whose
AI job has FINDINGS findings, so `accepted` and `overridden` decisions need no arrays.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from inference.models import Finding, InferenceJob, ModelVersion
from reviews.models import Assignment, MemberRole, ProjectMember, ProjectStudy, Reading, ReadingProject
from viewer.models import Patient, Series, Study

# The AI's triage over the studies: urgent, priority, routine, no AI result.
TRIAGE_SPREAD = (("urgent", 0.05), ("priority", 0.15), ("routine", 0.55), ("", 0.25))
READ_SHARE = 0.30  # studies already read: the default worklist ("to read") skips them
FINDINGS = 3
SLICES, SIZE = 8, 64
_BATCH = 5_000
_UID = "1.2.826.0.1.3680043.8.498.77"


@dataclass(frozen=True)
class ReaderSeat:
    """What one simulated reader needs: who it is and the reading it decides in."""

    username: str
    token: str
    session: str
    reading: int
    version: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def project_name(studies: int) -> str:
    return f"bench-review-{studies}"


def seeded(*, studies: int, readers: int) -> bool:
    """Whether the database already holds this benchmark's project, whole."""
    project = ReadingProject.objects.filter(name=project_name(studies)).first()
    if project is None:
        return False
    return (
        ProjectStudy.objects.filter(project=project).count() == studies
        and Reading.objects.filter(project=project).count() == readers
    )


def only_benchmark_data() -> bool:
    """Whether every study and project in the database is one this module wrote (or none)."""
    return not (
        Study.objects.exclude(study_uid__startswith=f"{_UID}.").exists()
        or ReadingProject.objects.exclude(name__startswith="bench-review-").exists()
    )


def seed(*, studies: int, readers: int, seed: int = 20261124) -> None:
    """Creates the project, its studies and its readers (one transaction)."""
    rng = random.Random(seed)
    now = timezone.now()
    with transaction.atomic():
        model = ModelVersion.objects.create(
            name="bench-lesion",
            version="1.0.0",
            status=ModelVersion.Status.ACTIVE,
            format=ModelVersion.Format.STATE_DICT,
            weights_key="bench/none.pt",
            weights_sha256="0" * 64,
            labels=["lesion"],
            threshold=0.5,
            study_threshold=0.5,
            triage_urgent=0.9,
            triage_priority=0.7,
        )
        project = ReadingProject.objects.create(
            name=project_name(studies), reading_mode=ReadingProject.Mode.AI_FIRST
        )
        users = _readers(project, readers)
        seats: list[tuple[Any, int]] = []  # (reader, study pk) for the readers' own readings
        for start in range(0, studies, _BATCH):
            numbers = range(start, min(start + _BATCH, studies))
            triages = [_triage(rng) for _ in numbers]
            waiting = [now - timedelta(minutes=rng.randrange(90 * 24 * 60)) for _ in numbers]
            study_rows = _studies(numbers, rng)
            series = Series.objects.bulk_create(
                Series(series_uid=f"{study.study_uid}.1", study=study, modality="CT", series_number=1)
                for study in study_rows
            )
            InferenceJob.objects.bulk_create(
                _job(model, s, triage, rng, now) for s, triage in zip(series, triages, strict=True) if triage
            )
            ProjectStudy.objects.bulk_create(
                ProjectStudy(
                    project=project,
                    study=study,
                    waiting_since=since,
                    ai_triage=triage,
                    triage_rank=ProjectStudy.TRIAGE_RANK[ProjectStudy.Triage(triage)],
                    reading_status=(
                        ProjectStudy.Status.READ if rng.random() < READ_SHARE else ProjectStudy.Status.WAITING
                    ),
                )
                for study, triage, since in zip(study_rows, triages, waiting, strict=True)
            )
            Assignment.objects.bulk_create(
                Assignment(project=project, study=study, reader=users[n % len(users)])
                for n, study in zip(numbers, study_rows, strict=True)
            )
            for study, triage in zip(study_rows, triages, strict=True):
                if triage == "urgent" and len(seats) < len(users):
                    seats.append((users[len(seats)], study.pk))
        _readings(project, seats)


def _triage(rng: random.Random) -> str:
    draw = rng.random()
    for triage, share in TRIAGE_SPREAD:
        if draw < share:
            return triage
        draw -= share
    return ""


def _readers(project: ReadingProject, count: int) -> list[Any]:
    group = Group.objects.get(name="radiologist")
    users = []
    for n in range(1, count + 1):
        user = get_user_model().objects.create(username=f"bench-reader-{n:03d}")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        user.groups.add(group)
        Token.objects.create(user=user)
        users.append(user)
    ProjectMember.objects.bulk_create(
        ProjectMember(project=project, user=user, role=MemberRole.RADIOLOGIST) for user in users
    )
    return users


def _studies(numbers: range, rng: random.Random) -> list[Study]:
    patients = Patient.objects.bulk_create(
        Patient(patient_id=f"BENCH{n:07d}", name=f"BENCH^PATIENT{n:07d}", sex=rng.choice("FM"))
        for n in numbers
    )
    today = timezone.now().date()
    return Study.objects.bulk_create(
        Study(
            study_uid=f"{_UID}.{n + 1}",
            patient=patient,
            study_date=today - timedelta(days=rng.randrange(365)),
            accession_number=f"BA{n:08d}",
            description=rng.choice(("CT CHEST", "CT CHEST W/O", "CT THORAX LOW DOSE")),
            modalities="CT",
            acquired_modalities="CT",
        )
        for n, patient in zip(numbers, patients, strict=True)
    )


def _job(model: ModelVersion, series: Series, triage: str, rng: random.Random, now: Any) -> InferenceJob:
    score = {"urgent": 0.95, "priority": 0.8, "routine": 0.2}[triage] + rng.uniform(-0.04, 0.04)
    return InferenceJob(
        model_version=model,
        series=series,
        status=InferenceJob.Status.SUCCEEDED,
        progress=100,
        input_hash=hashlib.sha256(series.series_uid.encode()).hexdigest(),
        instance_count=SLICES,
        study_score=score,
        triage=triage,
        slice_uids=[f"{series.series_uid}.{k + 1}" for k in range(SLICES)],
        rows=SIZE,
        columns=SIZE,
        finished_at=now,
    )


def _readings(project: ReadingProject, seats: list[tuple[Any, int]]) -> None:
    jobs = {
        job.series.study_id: job
        for job in InferenceJob.objects.select_related("series").filter(
            series__study_id__in=[study for _, study in seats]
        )
    }
    Finding.objects.bulk_create(
        Finding(
            job=job,
            index=index,
            label="lesion",
            bbox=[[index, index + 2], [8 * index, 8 * index + 6], [8 * index, 8 * index + 6]],
            centroid_voxel=[index + 1, 8 * index + 3, 8 * index + 3],
            centroid_mm=[0.0, 0.0, float(index)],
            volume_mm3=50.0 * index,
            voxel_count=72,
            max_probability=0.9,
            mean_probability=0.7,
        )
        for job in jobs.values()
        for index in range(1, FINDINGS + 1)
    )
    now = timezone.now()
    Reading.objects.bulk_create(
        Reading(
            project=project,
            study_id=study,
            reader=user,
            reader_role=MemberRole.RADIOLOGIST,
            reading_mode=project.reading_mode,
            phase=Reading.Phase.AI_REVEALED,
            series=jobs[study].series,
            slice_uids=jobs[study].slice_uids,
            rows=SIZE,
            columns=SIZE,
            revealed_job=jobs[study],
            revealed_at=now,
        )
        for user, study in seats
    )
    for user, study in seats:
        Assignment.objects.get_or_create(project=project, study_id=study, reader=user)
    ProjectStudy.objects.filter(project=project, study_id__in=[s for _, s in seats]).update(
        reading_status=ProjectStudy.Status.IN_PROGRESS
    )


def reader_seats(*, studies: int) -> list[ReaderSeat]:
    """Each reader's token, a fresh signed-in session (the HTML page) and their reading with
    its current version (read now, so the first decision of a run is never stale)."""
    project = ReadingProject.objects.get(name=project_name(studies))
    seats = []
    readings = Reading.objects.filter(project=project).select_related("reader").order_by("reader__username")
    for reading in readings:
        user = reading.reader
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        assert session.session_key is not None
        token = Token.objects.get(user=user).key
        seats.append(ReaderSeat(user.username, token, session.session_key, reading.pk, reading.version))
    return seats
