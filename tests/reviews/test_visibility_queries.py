"""Who sees which study and reading is the same whether the user's permissions were tested inside
the query (two EXISTS each) or, already loaded by the request, in Python."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef

from reviews.models import MemberRole, ProjectMember, Reading
from reviews.selectors import readings_for_user
from reviews.services import reading_entry, reading_start
from tests.factories import UserFactory
from viewer.models import Study
from viewer.selectors import series_queryset_for_user, study_queryset_for_user

pytestmark = pytest.mark.django_db


def _fresh(user):
    """The user as a new request finds them: no permissions loaded yet."""
    return get_user_model().objects.get(pk=user.pk)


def _loaded(user):
    """The user after the request asked a model permission: ModelBackend holds them all."""
    user = _fresh(user)
    user.has_perm("reviews.add_reading")
    return user


@pytest.fixture
def cast(in_project, project, rita, rob, anna, ada):
    """Rita's reading of the project's study; Rob reads in no project; Nora is a member of the
    project but holds no role, so no permission to see studies at all."""
    nora = UserFactory(username="nora")
    ProjectMember.objects.create(project=project, user=nora, role=MemberRole.RADIOLOGIST)
    entry = reading_entry(user=rita, study=in_project.study, project_pk=project.pk)
    reading, _ = reading_start(user=rita, entry=entry)
    return {"rita": rita, "rob": rob, "anna": anna, "ada": ada, "nora": nora, "reading": reading}


def test_the_same_studies_series_and_readings_either_way(cast, in_project):
    seen = {}
    for name in ("rita", "rob", "anna", "ada", "nora"):
        answers = []
        for user in (_fresh(cast[name]), _loaded(cast[name])):
            answers.append(
                (
                    set(study_queryset_for_user(user=user).values_list("study_uid", flat=True)),
                    set(series_queryset_for_user(user=user).values_list("series_uid", flat=True)),
                    set(readings_for_user(user=user).values_list("pk", flat=True)),
                )
            )
        assert answers[0] == answers[1], name
        seen[name] = answers[0]
    study, reading = in_project.study.study_uid, cast["reading"].pk
    # Rita reads it; Anna annotates in the project; Ada administers; Rob and Nora see nothing.
    assert {name for name, (studies, _, _) in seen.items() if study in studies} == {"rita", "anna", "ada"}
    assert {name for name, (_, _, readings) in seen.items() if reading in readings} == {"rita", "ada"}
    assert seen["rob"] == seen["nora"] == (set(), set(), set())


def test_loaded_permissions_leave_the_permission_tables_out_of_the_query(cast):
    fresh, loaded = _fresh(cast["rita"]), _loaded(cast["rita"])
    assert "auth_permission" in str(study_queryset_for_user(user=fresh).query)
    assert "auth_permission" not in str(study_queryset_for_user(user=loaded).query)
    # ...and a permission the user lacks empties the query without asking the database.
    nora = _loaded(cast["nora"])
    visible = study_queryset_for_user(user=nora).filter(pk=OuterRef("study_id"))
    assert not Reading.objects.filter(Exists(visible)).exists()
    assert Study.objects.exists()
