"""Fixtures of the hostile input suite: a fresh store and upload spool per test, a client per
way in, and a reading open on a small study (for the JSON API's hostile bodies).

Hostile inputs are built in the tests (or taken from the pydicom wheel's damaged test files),
never stored in the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from reviews.models import MemberRole, ProjectMember, Reading, ReadingProject
from reviews.services import project_studies_add
from tests.reviews.helpers import api
from tests.security.helpers import tiny_study
from tests.viewer import conftest as viewer_fixtures

# The viewer suite's store and spool fixtures, shared here.
empty_store = viewer_fixtures.empty_store
nothing_added = viewer_fixtures.nothing_added
no_upload_temp_files = viewer_fixtures.no_upload_temp_files


@pytest.fixture
def untouched(
    nothing_added: Callable[[], None], no_upload_temp_files: Callable[[], None]
) -> Callable[[], None]:
    """Call it after a refusal: no file entered the store, none stayed in the upload spool, no
    row entered the index."""

    def check() -> None:
        nothing_added()
        no_upload_temp_files()

    return check


@pytest.fixture
def session(rita: Any) -> Client:
    """The browser of Rita, a radiologist, signed in (the upload page, the HTML pages)."""
    client = Client()
    client.force_login(rita)
    return client


@pytest.fixture
def token(rita: Any) -> Client:
    """A script with Rita's API token (STOW-RS, DICOMweb)."""
    key = Token.objects.create(user=rita).key
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


@pytest.fixture
def admin_session(ada: Any) -> Client:
    client = Client()
    client.force_login(ada)
    return client


@dataclass(frozen=True)
class OpenReading:
    """Rita's reading of a 4-slice 8x8 study, open in the unaided phase."""

    pk: int
    version: int
    study_uid: str
    series_uid: str
    slice_uids: list[str]  # the SOP Instance UIDs, in the reading's slice order
    client: APIClient
    store: Path

    @property
    def url(self) -> str:
        return f"/api/v1/readings/{self.pk}/"

    def current(self) -> Reading:
        return Reading.objects.get(pk=self.pk)


@pytest.fixture
def reading(rita: Any, empty_store: Path) -> OpenReading:
    project = ReadingProject.objects.create(name="Hostile input reading")
    ProjectMember.objects.create(project=project, user=rita, role=MemberRole.RADIOLOGIST)
    study = tiny_study()
    project_studies_add(project=project, studies=[study])
    client = api(rita)
    opened = client.post(
        "/api/v1/readings/", {"study_uid": study.study_uid, "project": project.pk}, format="json"
    )
    assert opened.status_code == 201, opened.content
    body = opened.json()
    return OpenReading(
        pk=body["id"],
        version=body["version"],
        study_uid=study.study_uid,
        series_uid=body["series_uid"],
        slice_uids=body["slice_uids"],
        client=client,
        store=empty_store,
    )
