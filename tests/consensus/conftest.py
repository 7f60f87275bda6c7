"""Fixtures of the consensus project tests: readers in no department-wide project (here we
test who sees what), an adjudicator, a consensus project reading each case twice, and small
stored studies with known lesions and anisotropic voxels."""

from __future__ import annotations

from typing import Any

import pytest

from reviews.models import MemberRole, ProjectMember, ReadingProject
from reviews.roles import Role
from tests.factories import UserFactory

SCHEMA = {
    "questions": [
        {
            "code": "nodule_type",
            "text": "Main nodule type",
            "choices": ["solid", "part_solid", "ground_glass"],
        },
        {"code": "follow_up", "text": "Follow-up CT needed", "choices": ["yes", "no"]},
    ]
}


@pytest.fixture
def rita(db: Any) -> Any:
    """Rita, a radiologist (in no project until a test puts her in one)."""
    return UserFactory(username="rita", role=Role.RADIOLOGIST)


@pytest.fixture
def rob(db: Any) -> Any:
    return UserFactory(username="rob", role=Role.RADIOLOGIST)


@pytest.fixture
def ray(db: Any) -> Any:
    return UserFactory(username="ray", role=Role.RADIOLOGIST)


@pytest.fixture
def anna(db: Any) -> Any:
    """Anna, an annotator."""
    return UserFactory(username="anna", role=Role.ANNOTATOR)


@pytest.fixture
def adi(db: Any) -> Any:
    """Adi, an adjudicator."""
    return UserFactory(username="adi", role=Role.ADJUDICATOR)


@pytest.fixture
def store(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def consensus(db: Any, rita: Any, rob: Any, adi: Any) -> ReadingProject:
    """Two reads per case, unaided; Rita and Rob read, Adi adjudicates."""
    project = ReadingProject.objects.create(
        name="Nodule consensus", kind=ReadingProject.Kind.CONSENSUS, reads_per_case=2, label_schema=SCHEMA
    )
    ProjectMember.objects.create(project=project, user=rita, role=MemberRole.RADIOLOGIST)
    ProjectMember.objects.create(project=project, user=rob, role=MemberRole.RADIOLOGIST)
    ProjectMember.objects.create(project=project, user=adi, role=MemberRole.ADJUDICATOR)
    return project
