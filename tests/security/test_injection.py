"""SQL and HTML/JS injection in every free-text field: stored verbatim, matched as data, shown as
text.

Free text reaches Overread from DICOM headers (patient, study and series attributes), from
readers (impressions, override reasons), from adjudicators (the rationale), from admins
(project names), from file and archive entry names, and from filters people type. The database
must hold each exactly as sent (queries are parameterised: the SQL is only text), and every
page that renders one must escape it. The API answers JSON with `nosniff`, so a browser never
takes it for a page.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from inference.models import Finding, InferenceJob
from reviews.models import (
    ConsensusCase,
    Decision,
    MemberRole,
    ProjectMember,
    Reading,
    ReadingProject,
    ReferenceStandard,
)
from reviews.roles import Role
from reviews.services import project_studies_add
from reviews.tasks import consensus_case_compute_run
from tests.factories import DEPARTMENT, UserFactory
from tests.reviews.helpers import api, model_version
from tests.security.helpers import ATTRIBUTE, IMAGE, SCRIPT, SQL, assert_escaped, plane, stow, tiny_study
from tests.viewer.conftest import ct_dataset, part10, zip_of
from viewer.models import Instance, Patient, Series, Study

pytestmark = pytest.mark.django_db

ACCESSION = '"><b>x</b>'  # Accession Number is an SH: 16 characters at most


def _page(client: Client, url: str, **params: Any) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def _assert_json_not_html(response: Any) -> None:
    assert response["Content-Type"].startswith(("application/json", "application/dicom+json"))
    assert response["X-Content-Type-Options"] == "nosniff"


# --- DICOM headers ------------------------------------------------------------------------------------
@pytest.fixture
def hostile_study(token: Client, empty_store: Any) -> Study:
    """A study sent over STOW-RS whose free-text attributes are injection strings."""
    ds = ct_dataset(
        PatientID=SQL,
        PatientName=SCRIPT,
        AccessionNumber=ACCESSION,
        StudyDescription=IMAGE,
        SeriesDescription=ATTRIBUTE,
        ReferringPhysicianName=SQL,
    )
    assert stow(token, part10(ds)).status_code == 200
    study = Study.objects.select_related("patient").get(study_uid=ds.StudyInstanceUID)
    project_studies_add(
        project=ReadingProject.objects.get(name=DEPARTMENT), studies=[study]
    )  # on the worklist
    return study


def test_dicom_free_text_is_stored_verbatim(hostile_study):
    patient, series = hostile_study.patient, Series.objects.get(study=hostile_study)

    assert (patient.patient_id, patient.name) == (SQL, SCRIPT)
    assert (hostile_study.accession_number, hostile_study.description) == (ACCESSION, IMAGE)
    assert (hostile_study.referring_physician, series.description) == (SQL, ATTRIBUTE)
    assert Patient.objects.filter(patient_id=SQL).count() == 1  # the DROP TABLE was only text


def test_dicom_free_text_is_escaped_on_the_worklist_and_the_viewer(hostile_study, session):
    worklist = _page(session, "/")
    viewer = _page(session, f"/studies/{hostile_study.study_uid}/")

    for text in (SCRIPT, SQL, ACCESSION, IMAGE):
        assert_escaped(worklist, text)
    for text in (SCRIPT, SQL, IMAGE, ATTRIBUTE):
        assert_escaped(viewer, text)


def test_dicom_free_text_is_matched_as_data_by_qido(hostile_study, token):
    response = token.get("/dicomweb/studies", {"PatientID": SQL})
    fuzzy = token.get("/dicomweb/studies", {"PatientName": "*<script>*", "StudyDescription": "*onerror=*"})

    assert response.status_code == 200
    [study] = response.json()
    assert study["0020000D"]["Value"] == [hostile_study.study_uid]
    assert study["00100010"]["Value"] == [{"Alphabetic": SCRIPT}]
    assert [s["0020000D"]["Value"][0] for s in fuzzy.json()] == [hostile_study.study_uid]
    _assert_json_not_html(response)


def test_dicom_free_text_is_escaped_on_the_audit_page(hostile_study, admin_session):
    page = _page(admin_session, "/audit/", patient_id=SQL)

    assert_escaped(page, SQL)
    assert AuditEvent.objects.filter(patient_id=SQL, event_id="110104").exists()  # the STOW transfer


# --- What readers type ----------------------------------------------------------------------------------
@pytest.fixture
def revealed(rita: Any, empty_store: Any) -> Reading:
    """Rita's reading of a small study whose AI result (one finding) she has revealed."""
    project = ReadingProject.objects.create(name=SCRIPT)
    ProjectMember.objects.create(project=project, user=rita, role=MemberRole.RADIOLOGIST)
    study = tiny_study(StudyDescription=IMAGE)
    project_studies_add(project=project, studies=[study])
    client = api(rita)
    opened = client.post(
        "/api/v1/readings/", {"study_uid": study.study_uid, "project": project.pk}, format="json"
    )
    reading = Reading.objects.get(pk=opened.json()["id"])
    job = InferenceJob.objects.create(
        model_version=model_version(),
        series=reading.series,
        status=InferenceJob.Status.SUCCEEDED,
        input_hash="a" * 64,
        slice_uids=reading.slice_uids,
        rows=reading.rows,
        columns=reading.columns,
        finished_at=timezone.now(),
    )
    Finding.objects.create(
        job=job,
        index=1,
        label="lesion",
        bbox=[[0, 1], [2, 5], [2, 5]],
        centroid_voxel=[0.0, 3.0, 3.0],
        centroid_mm=[0.0, 0.0, 0.0],
        volume_mm3=4.5,
        voxel_count=9,
        max_probability=0.9,
        mean_probability=0.8,
    )
    locked = client.post(
        f"/api/v1/readings/{reading.pk}/lock/",
        {"version": reading.version, "unaided_impression": SCRIPT + SQL},
        format="json",
    )
    assert locked.status_code == 200, locked.content
    assert locked.json()["phase"] == Reading.Phase.AI_REVEALED
    return Reading.objects.get(pk=reading.pk)


def test_a_readers_free_text_is_stored_and_answered_verbatim(revealed, rita):
    client = api(rita)
    url = f"/api/v1/readings/{revealed.pk}/"
    overridden = client.post(
        url + "decisions/",
        {
            "version": revealed.version,
            "kind": "overridden",
            "finding": 1,
            "confidence": 4,
            "reason_code": "other",
            "reason_text": IMAGE + SQL,
        },
        format="json",
    )
    drafted = client.patch(
        url, {"version": overridden.json()["version"], "final_impression": ATTRIBUTE}, format="json"
    )

    assert overridden.status_code == 201, overridden.content
    assert drafted.status_code == 200, drafted.content
    reading = Reading.objects.get(pk=revealed.pk)
    assert (reading.unaided_impression, reading.final_impression) == (SCRIPT + SQL, ATTRIBUTE)
    assert Decision.objects.get(reading=reading).reason_text == IMAGE + SQL
    answered = client.get(url)
    assert (answered.json()["unaided_impression"], answered.json()["final_impression"]) == (
        SCRIPT + SQL,
        ATTRIBUTE,
    )
    assert client.get(url + "decisions/").json()[0]["reason_text"] == IMAGE + SQL
    _assert_json_not_html(answered)


def test_a_readers_free_text_is_escaped_in_the_admin(revealed, rita, ada):
    client = api(rita)
    client.post(
        f"/api/v1/readings/{revealed.pk}/decisions/",
        {
            "version": revealed.version,
            "kind": "overridden",
            "finding": 1,
            "confidence": 4,
            "reason_code": "other",
            "reason_text": IMAGE,
        },
        format="json",
    )
    root: Any = UserFactory(username="root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)

    reading_page = _page(admin, f"/admin/reviews/reading/{revealed.pk}/change/")
    decision_page = _page(admin, f"/admin/reviews/decision/{Decision.objects.get().pk}/change/")

    assert_escaped(reading_page, SCRIPT)
    assert_escaped(decision_page, IMAGE)


def test_a_project_name_is_escaped_on_the_worklist_and_the_viewer(revealed, session):
    worklist = _page(session, "/")
    viewer = _page(session, f"/studies/{revealed.study.study_uid}/", project=revealed.project_id)

    assert_escaped(worklist, SCRIPT)
    assert_escaped(viewer, SCRIPT)  # the reading panel names the project
    assert_escaped(viewer, IMAGE)


# --- What adjudicators type ----------------------------------------------------------------------------
def _read(user: Any, study: Study, slice_uid: str, impression: str) -> None:
    client = api(user)
    reading = client.post("/api/v1/readings/", {"study_uid": study.study_uid}, format="json").json()
    url = f"/api/v1/readings/{reading['id']}/"
    mask = {slice_uid: base64.b64encode(plane().tobytes()).decode()}
    added = client.post(
        url + "decisions/",
        {"version": reading["version"], "kind": "added", "label": "nodule", "confidence": 4, "mask": mask},
        format="json",
    )
    locked = client.post(url + "lock/", {"version": added.json()["version"]}, format="json")
    submitted = client.post(
        url + "submit/", {"version": locked.json()["version"], "final_impression": impression}, format="json"
    )
    assert submitted.status_code == 200, submitted.content


@pytest.fixture
def adjudicated(empty_store: Any) -> ConsensusCase:
    """A consensus case of a small study (described with markup) in a project named with a script,
    read by two radiologists whose final impressions are injection strings, compared."""
    readers: list[Any] = [UserFactory(username=name, role=Role.RADIOLOGIST) for name in ("rita", "rob")]
    project = ReadingProject.objects.create(name=SCRIPT, kind=ReadingProject.Kind.CONSENSUS, reads_per_case=2)
    for reader in readers:
        ProjectMember.objects.create(project=project, user=reader, role=MemberRole.RADIOLOGIST)
    study = tiny_study(StudyDescription=IMAGE)
    project_studies_add(project=project, studies=[study])
    first_slice = Instance.objects.filter(series__study=study).order_by("instance_number")[0].sop_instance_uid
    for reader, impression in zip(readers, (SQL, ATTRIBUTE), strict=True):
        _read(reader, study, first_slice, impression)
    case = ConsensusCase.objects.get(entry__study=study)
    consensus_case_compute_run(case_pk=case.pk)
    return case


def test_the_rationale_and_the_reads_are_stored_verbatim_and_escaped_where_shown(adjudicated, ada):
    case, project = adjudicated, adjudicated.project
    client = api(ada)

    recorded = client.post(
        f"/api/v1/consensus/cases/{case.pk}/reference/",
        {"version": 0, "source": "majority", "answers": {}, "rationale": SCRIPT + SQL},
        format="json",
    )
    shown = client.get(f"/api/v1/consensus/cases/{case.pk}/")
    browser = Client()
    browser.force_login(ada)

    assert recorded.status_code == 201, recorded.content
    assert ReferenceStandard.objects.get(case=case).rationale == SCRIPT + SQL
    assert shown.json()["reference"]["rationale"] == SCRIPT + SQL
    assert sorted(read["final_impression"] for read in shown.json()["reads"]) == sorted([SQL, ATTRIBUTE])
    _assert_json_not_html(shown)
    for url in ("/consensus/", f"/consensus/projects/{project.pk}/"):
        assert_escaped(_page(browser, url), SCRIPT)
    assert_escaped(_page(browser, f"/consensus/projects/{project.pk}/", cases="all"), IMAGE)


def test_a_hostile_reference_source_is_refused_by_name(adjudicated, ada):
    client = api(ada)

    for source in (
        "reading:../../1",
        "reading:99999999999999999999",
        "reading:1 OR 1=1",
        SCRIPT,
        "edited\x00",
    ):
        response = client.post(
            f"/api/v1/consensus/cases/{adjudicated.pk}/reference/",
            {"version": 0, "source": source, "answers": {}, "rationale": "why"},
            format="json",
        )

        assert response.status_code == 400, source
        assert response.json()["field"] == "source"
    assert not ReferenceStandard.objects.exists()


# --- Names of files and entries, and what people type into filters -------------------------------------
def test_file_and_entry_names_are_escaped_on_the_upload_page_and_the_audit_page(
    session, admin_session, empty_store
):
    archive = zip_of([(f"../{ATTRIBUTE}.dcm", part10(ct_dataset()))])
    files = [SimpleUploadedFile(f"{IMAGE}.dcm", b"not an image"), SimpleUploadedFile("study.zip", archive)]

    response = session.post("/upload/", {"files": files})

    page = response.content.decode()
    assert response.status_code == 422  # nothing stored
    assert "2 rejected" in page
    assert not Instance.objects.exists()
    assert_escaped(page, IMAGE)  # the file's name
    assert_escaped(page, ATTRIBUTE)  # in the archive's refusal: "entry '../" onmouseover=...' points outside"
    assert_escaped(_page(admin_session, "/audit/", event_id="110113"), ATTRIBUTE)  # the Security Alert


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/", {"q": SCRIPT, "modality": ACCESSION}),
        ("/audit/", {"username": SCRIPT, "patient_id": IMAGE}),
    ],
    ids=["worklist_filters", "audit_filters"],
)
def test_filter_values_are_shown_back_as_text(url, params, session, admin_session):
    client = admin_session if url == "/audit/" else session

    page = _page(client, url, **params)

    for value in params.values():
        assert_escaped(page, value)
