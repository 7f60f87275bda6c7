"""`manage.py seed_demo`: demo studies and one demo user per role, for local evaluation only.

Runs once: later runs keep the users and studies and print the credentials
again. The studies are synthetic CT series made by fixtures/synthetic.py (a
fixed seed each, so every installation has the same ones), ingested like any
upload. The passwords are random per installation and kept in
var/demo_credentials.txt (mode 600), never in the repository.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from fixtures.synthetic import make_ct_study, write_study
from inference.models import ModelVersion
from inference.registry import (
    DEMO_MANIFEST,
    ModelDescription,
    RegistryError,
    model_register,
    model_status_set,
)
from reviews.models import MemberRole, ProjectMember, ReadingProject
from reviews.roles import Role
from reviews.services import project_studies_add
from viewer.ingest.service import ingest_file
from viewer.models import Study

# (seed, lesions): normal studies and studies with one to three lesions.
DEMO_STUDIES = [(101, 0), (102, 1), (103, 2), (104, 3), (105, 1), (106, 0)]
DEMO_PATIENT_PREFIX = "DEMO"

DEMO_PROJECT = "Demo chest CT second reading"
DEMO_CONSENSUS = "Demo nodule consensus"
DEMO_CONSENSUS_CASES = 3
DEMO_QUESTION = {
    "code": "nodule_type",
    "text": "Nodule type",
    "choices": ["solid", "part-solid", "ground-glass"],
}

DEMO_USERS = {
    "radiologist": (Role.RADIOLOGIST, "Rita", "Radiologist"),
    "annotator": (Role.ANNOTATOR, "Anna", "Annotator"),
    "adjudicator": (Role.ADJUDICATOR, "Adi", "Adjudicator"),
    "admin": (Role.ADMIN, "Ada", "Admin"),
}


class Command(BaseCommand):
    help = "Creates one demo user per role (local evaluation only) and prints their credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-https",
            action="store_true",
            help="seed even though HTTPS is on (a production-like deployment)",
        )
        parser.add_argument("--slices", type=int, default=48, help="slices per demo study")
        parser.add_argument("--no-studies", action="store_true", help="create the users only")

    def handle(self, *args: Any, allow_https: bool, slices: int, no_studies: bool, **options: Any) -> None:
        if settings.HTTPS and not allow_https:
            raise CommandError(
                "refusing to create demo accounts on an HTTPS (production-like) deployment; "
                "pass --allow-https if this really is a demonstration server"
            )
        credentials_file = Path(settings.VAR_DIR) / "demo_credentials.txt"
        credentials = _read_credentials(credentials_file)
        with transaction.atomic():
            for username, (role, first, last) in DEMO_USERS.items():
                password = credentials.get(username)
                created = _ensure_user(username, role, first, last, password)
                if created is not None:
                    credentials[username] = created
        _write_credentials(credentials_file, credentials)
        model = _ensure_demo_model()
        if model:
            self.stdout.write(f"Registered the demonstration model {model} (active).")
        project = _ensure_demo_project()
        loaded = 0 if no_studies else _load_demo_studies(slices)
        if loaded:
            self.stdout.write(f"Loaded {loaded} synthetic demo studies.")
        added = _fill_demo_project(project)
        if added:
            self.stdout.write(f"Added {added} demo studies to the reading project {project}.")
        cases = _ensure_consensus_project()
        if cases:
            self.stdout.write(f"Added {cases} demo cases to the consensus project {DEMO_CONSENSUS}.")

        self.stdout.write(self.style.WARNING("Demo accounts (local use only, not for patient data):"))
        for username, (role, *_names) in DEMO_USERS.items():
            self.stdout.write(f"  {role:<12} {username:<12} {credentials[username]}")


def _ensure_user(username: str, role: str, first: str, last: str, password: str | None) -> str | None:
    """Creates the user (or resets a password we no longer know); returns a new password if set."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username, defaults={"first_name": first, "last_name": last}
    )
    new_password = None
    if created or password is None:
        new_password = secrets.token_urlsafe(12)
        user.set_password(new_password)
    user.is_staff = role == Role.ADMIN
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return new_password


def _ensure_demo_model() -> str | None:
    """Registers the demonstration model shipped in fixtures/ (active), once. A new version
    replaces the earlier demonstration versions: they are retired (audited), so a study is not
    read twice by two generations of the same demonstration model."""
    description = ModelDescription.from_manifest(DEMO_MANIFEST)
    if ModelVersion.objects.filter(name=description.name, version=description.version).exists():
        return None
    try:
        model = model_register(description=description, status=ModelVersion.Status.ACTIVE)
    except RegistryError as exc:
        raise CommandError(f"the demonstration model cannot be registered: {exc}") from exc
    earlier = ModelVersion.objects.filter(name=description.name, demonstration=True).exclude(pk=model.pk)
    for old in earlier.exclude(status=ModelVersion.Status.RETIRED):
        model_status_set(model=old, status=ModelVersion.Status.RETIRED)
    return str(model)


def _ensure_demo_project() -> ReadingProject:
    """The demo reading project (unaided first), with the demo radiologist as its reader."""
    project, _ = ReadingProject.objects.get_or_create(
        name=DEMO_PROJECT,
        defaults={"reading_mode": ReadingProject.Mode.UNAIDED_FIRST, "auto_enrol": True},
    )
    radiologist = get_user_model().objects.get(username="radiologist")
    ProjectMember.objects.get_or_create(
        project=project, user=radiologist, defaults={"role": MemberRole.RADIOLOGIST}
    )
    return project


def _fill_demo_project(project: ReadingProject) -> int:
    """Puts the demo studies in the project (round-robin: all to the demo radiologist, its only
    reader so far), then adds the demo annotator and adjudicator as members."""
    studies = Study.objects.filter(patient__patient_id__startswith=DEMO_PATIENT_PREFIX)
    added = len(project_studies_add(project=project, studies=studies))
    user_model = get_user_model()
    for username, role in (("annotator", MemberRole.ANNOTATOR), ("adjudicator", MemberRole.ADJUDICATOR)):
        user = user_model.objects.get(username=username)
        ProjectMember.objects.get_or_create(project=project, user=user, defaults={"role": role})
    return added


def _ensure_consensus_project() -> int:
    """A consensus project over the first demo studies: the demo radiologist and annotator read
    each case blind to each other, the demo adjudicator resolves disagreements."""
    project, _ = ReadingProject.objects.get_or_create(
        name=DEMO_CONSENSUS,
        defaults={
            "kind": ReadingProject.Kind.CONSENSUS,
            "reads_per_case": 2,
            "label_schema": {"questions": [DEMO_QUESTION]},
            "reading_mode": ReadingProject.Mode.UNAIDED_FIRST,
        },
    )
    user_model = get_user_model()
    for username, role in (
        ("radiologist", MemberRole.RADIOLOGIST),
        ("annotator", MemberRole.ANNOTATOR),
        ("adjudicator", MemberRole.ADJUDICATOR),
    ):
        user = user_model.objects.get(username=username)
        ProjectMember.objects.get_or_create(project=project, user=user, defaults={"role": role})
    studies = Study.objects.filter(patient__patient_id__startswith=DEMO_PATIENT_PREFIX).order_by(
        "patient__patient_id"
    )[:DEMO_CONSENSUS_CASES]
    return len(project_studies_add(project=project, studies=list(studies)))


def _load_demo_studies(slices: int) -> int:
    """Ingests the synthetic demo studies that are not there yet; returns how many it added."""
    added = 0
    with tempfile.TemporaryDirectory() as tmp:
        for number, (seed, lesions) in enumerate(DEMO_STUDIES, start=1):
            patient_id = f"{DEMO_PATIENT_PREFIX}{number:04d}"
            if Study.objects.filter(patient__patient_id=patient_id).exists():
                continue
            study = make_ct_study(
                seed=seed,
                slices=slices,
                rows=256,
                columns=256,
                spacing=(2.5, 1.4, 1.4),
                lesions=lesions,
                patient_id=patient_id,
                patient_name=f"DEMO^CASE{number:04d}",
            )
            for path in write_study(study, Path(tmp) / patient_id):
                outcome = ingest_file(source=path, name=path.name, origin="import")
                if outcome.status == "rejected":
                    raise CommandError(f"demo study {patient_id} was rejected: {outcome.reason}")
            added += 1
    return added


def _read_credentials(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    return {name: password for name, password in pairs}


def _write_credentials(path: Path, credentials: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text("".join(f"{name} {password}\n" for name, password in credentials.items()))
