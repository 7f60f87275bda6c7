"""Fixtures of the reviews tests: the cast without the department-wide project (here we test
who sees what), a second radiologist, a small study in the store with an AI result, and a
reading project holding it."""

from __future__ import annotations

from typing import Any

import pytest

from reviews.models import MemberRole, ProjectMember, ReadingProject
from reviews.roles import Role
from reviews.services import project_studies_add
from tests.factories import UserFactory
from tests.reviews.helpers import AiResult, ai_result, stored_study


@pytest.fixture
def rita(db: Any) -> Any:
    """Rita, a radiologist (in no project until a test puts her in one)."""
    return UserFactory(username="rita", role=Role.RADIOLOGIST, first_name="Rita", last_name="Reader")


@pytest.fixture
def rob(db: Any) -> Any:
    """Rob, a second radiologist."""
    return UserFactory(username="rob", role=Role.RADIOLOGIST, first_name="Rob", last_name="Second")


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
def case(db: Any, store: Any) -> AiResult:
    """A 16-slice 64x64 CT with two lesions, in the store, and a succeeded AI job whose
    findings are exactly the lesions (urgent)."""
    return ai_result(stored_study(seed=21, lesions=2))


@pytest.fixture
def project(db: Any, rita: Any, anna: Any, adi: Any) -> ReadingProject:
    """Unaided first; Rita reads, Anna annotates (the AI hidden from her), Adi adjudicates."""
    project = ReadingProject.objects.create(name="Chest CT second reading")
    ProjectMember.objects.create(project=project, user=rita, role=MemberRole.RADIOLOGIST)
    ProjectMember.objects.create(project=project, user=anna, role=MemberRole.ANNOTATOR)
    ProjectMember.objects.create(project=project, user=adi, role=MemberRole.ADJUDICATOR)
    return project


@pytest.fixture
def in_project(project: ReadingProject, case: AiResult) -> AiResult:
    """The case's study in the project (assigned round-robin: to Rita, its first reader)."""
    project_studies_add(project=project, studies=[case.study])
    return case
