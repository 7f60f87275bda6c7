"""Who sees which study and reading is the same whether the user's permissions and project
memberships were tested inside the query (EXISTS with joins) or, already loaded by the request,
in Python."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef

from reviews.models import MemberRole, ProjectMember, Reading, ReadingProject
from reviews.permissions import memberships
from reviews.roles import Role
from reviews.selectors import readings_for_user
from reviews.services import project_studies_add, reading_entry, reading_start
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


def _with_memberships(user):
    """...and after a rule asked for the user's project memberships."""
    user = _loaded(user)
    memberships(user)
    return user


@pytest.fixture
def cast(in_project, project, rita, rob, anna, ada):
    """Rita's reading of the project's study; Rob reads in no project; Nora is a member of the
    project but holds no role, so no permission to see studies at all. Ivan reads in a closed
    project that holds the study; Dora in an open department project (every study)."""
    nora = UserFactory(username="nora")
    ProjectMember.objects.create(project=project, user=nora, role=MemberRole.RADIOLOGIST)
    ivan = UserFactory(username="ivan", role=Role.RADIOLOGIST)
    closed = ReadingProject.objects.create(name="Closed", active=False)
    ProjectMember.objects.create(project=closed, user=ivan, role=MemberRole.RADIOLOGIST)
    project_studies_add(project=closed, studies=[in_project.study])
    dora = UserFactory(username="dora", role=Role.RADIOLOGIST)
    department = ReadingProject.objects.create(name="Department", all_studies=True)
    ProjectMember.objects.create(project=department, user=dora, role=MemberRole.RADIOLOGIST)
    closed_department = ReadingProject.objects.create(name="Old department", all_studies=True, active=False)
    ProjectMember.objects.create(project=closed_department, user=ivan, role=MemberRole.RADIOLOGIST)
    entry = reading_entry(user=rita, study=in_project.study, project_pk=project.pk)
    reading, _ = reading_start(user=rita, entry=entry)
    cast = {"rita": rita, "rob": rob, "anna": anna, "ada": ada, "nora": nora, "ivan": ivan, "dora": dora}
    return {**cast, "reading": reading}


def test_the_same_studies_series_and_readings_either_way(cast, in_project):
    seen = {}
    for name in ("rita", "rob", "anna", "ada", "nora", "ivan", "dora"):
        answers = []
        for user in (_fresh(cast[name]), _loaded(cast[name]), _with_memberships(cast[name])):
            answers.append(
                (
                    set(study_queryset_for_user(user=user).values_list("study_uid", flat=True)),
                    set(series_queryset_for_user(user=user).values_list("series_uid", flat=True)),
                    set(readings_for_user(user=user).values_list("pk", flat=True)),
                )
            )
        assert answers[0] == answers[1] == answers[2], name
        seen[name] = answers[0]
    study, reading = in_project.study.study_uid, cast["reading"].pk
    # Rita reads it; Anna annotates in the project; Ada administers; Dora's project holds every
    # study; Rob, Nora and Ivan (whose projects are closed) see nothing.
    seeing = {"rita", "anna", "ada", "dora"}
    assert {name for name, (studies, _, _) in seen.items() if study in studies} == seeing
    assert {name for name, (_, _, readings) in seen.items() if reading in readings} == {"rita", "ada"}
    assert seen["rob"] == seen["nora"] == seen["ivan"] == (set(), set(), set())


def test_loaded_permissions_leave_the_permission_tables_out_of_the_query(cast):
    fresh, loaded = _fresh(cast["rita"]), _loaded(cast["rita"])
    assert "auth_permission" in str(study_queryset_for_user(user=fresh).query)
    assert "auth_permission" not in str(study_queryset_for_user(user=loaded).query)
    # ...and a permission the user lacks empties the query without asking the database.
    nora = _loaded(cast["nora"])
    visible = study_queryset_for_user(user=nora).filter(pk=OuterRef("study_id"))
    assert not Reading.objects.filter(Exists(visible)).exists()
    assert Study.objects.exists()


def test_loaded_memberships_leave_the_membership_joins_out_of_the_query(cast):
    loaded, with_memberships = _loaded(cast["rita"]), _with_memberships(cast["rita"])
    assert "reviews_projectmember" in str(study_queryset_for_user(user=loaded).query)
    assert "reviews_projectmember" not in str(study_queryset_for_user(user=with_memberships).query)
    # ...and a reading lookup loads them first: the rules that follow ask for them anyway.
    assert "reviews_projectmember" not in str(readings_for_user(user=_loaded(cast["rita"])).query)
