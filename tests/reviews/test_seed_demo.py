"""`seed_demo` creates one demo user per role once, and keeps them on later runs."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from reviews.management.commands.seed_demo import DEMO_CONSENSUS, DEMO_PROJECT, DEMO_USERS

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def _credentials(output: str) -> dict[str, str]:
    rows = [line.split() for line in output.splitlines() if line.startswith("  ")]
    return {username: password for _role, username, password in rows}


def test_it_creates_one_user_per_role_with_printed_passwords(var_dir, capsys):
    call_command("seed_demo", no_studies=True)
    printed = _credentials(capsys.readouterr().out)
    assert set(printed) == set(DEMO_USERS)
    for username, (role, *_names) in DEMO_USERS.items():
        user = get_user_model().objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.check_password(printed[username])
    assert (var_dir / "demo_credentials.txt").stat().st_mode & 0o777 == 0o600


def test_a_second_run_keeps_the_users_and_their_passwords(var_dir, capsys):
    call_command("seed_demo", no_studies=True)
    first = _credentials(capsys.readouterr().out)
    call_command("seed_demo", no_studies=True)
    assert _credentials(capsys.readouterr().out) == first
    assert get_user_model().objects.count() == len(DEMO_USERS)


def test_it_refuses_on_a_production_like_https_deployment(var_dir, settings):
    settings.HTTPS = True
    with pytest.raises(CommandError, match="refusing to create demo accounts"):
        call_command("seed_demo", no_studies=True)
    assert get_user_model().objects.count() == 0


def test_it_loads_the_synthetic_demo_studies_once_onto_the_radiologists_worklist(var_dir):
    from viewer.models import Instance, Study

    call_command("seed_demo")
    call_command("seed_demo")
    assert Study.objects.count() == 6
    assert Instance.objects.count() == 6 * 48
    assert set(Study.objects.values_list("patient__patient_id", flat=True)) == {
        f"DEMO{n:04d}" for n in range(1, 7)
    }
    # ...in a reading project, assigned round-robin to its one reader, the demo radiologist.
    from reviews.models import Assignment, ProjectStudy, ReadingProject
    from reviews.selectors import WorklistFilter, worklist_page

    project = ReadingProject.objects.get(name=DEMO_PROJECT)
    assert ProjectStudy.objects.filter(project=project).count() == 6
    assert set(Assignment.objects.filter(project=project).values_list("reader__username", flat=True)) == {
        "radiologist"
    }
    assert set(project.memberships.values_list("user__username", "role")) == {
        ("radiologist", "radiologist"),
        ("annotator", "annotator"),
        ("adjudicator", "adjudicator"),
    }
    radiologist = get_user_model().objects.get(username="radiologist")
    mine = WorklistFilter(mine=True, project=project.pk)
    assert len(worklist_page(user=radiologist, worklist_filter=mine).rows) == 6
    # ...and a consensus project over the first three, each read by two demo readers.
    from reviews.models import ConsensusCase

    consensus = ReadingProject.objects.get(name=DEMO_CONSENSUS)
    assert consensus.is_consensus
    assert consensus.reads_per_case == 2
    cases = ConsensusCase.objects.filter(project=consensus)
    assert cases.count() == 3
    for case in cases:
        readers = Assignment.objects.filter(project=consensus, study=case.entry.study)
        assert set(readers.values_list("reader__username", flat=True)) == {"radiologist", "annotator"}


def test_a_new_demonstration_model_version_retires_the_earlier_one(var_dir, capsys):
    from audit.models import AuditEvent
    from inference.models import ModelVersion
    from inference.registry import DEMO_MANIFEST, ModelDescription
    from tests.reviews.helpers import model_version

    shipped = ModelDescription.from_manifest(DEMO_MANIFEST)
    earlier = model_version(name=shipped.name, version="0.9.0", demonstration=True)
    other = model_version(name="site-model", version="0.9.0")  # not a demonstration model

    call_command("seed_demo", no_studies=True)

    assert f"Registered the demonstration model {shipped.name} {shipped.version}" in capsys.readouterr().out
    statuses = dict(ModelVersion.objects.values_list("version", "status").filter(name=shipped.name))
    assert statuses == {"0.9.0": "retired", shipped.version: "active"}
    other.refresh_from_db()
    assert other.status == "active"
    changes = [event.detail_data for event in AuditEvent.objects.filter(model_version=str(earlier))]
    assert {"status": "retired", "previous": "active"} in changes
