"""Pulling studies from a real PACS (Orthanc over DICOMweb) and pushing results back.

CI starts a private Orthanc (scripts/services.sh); locally these skip unless
PACS_DICOMWEB_URL points at one.
"""

from __future__ import annotations

import os
import time

import highdicom as hd
import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.core.management import CommandError, call_command
from django.urls import reverse
from pydicom.sr.codedict import codes

from audit.models import AuditEvent
from fixtures.synthetic import make_ct_study
from tests.conftest import require_service
from viewer.models import Instance, PacsPull, Study

pytestmark = pytest.mark.integration


@pytest.fixture
def orthanc() -> DICOMwebClient:
    """An independent DICOMweb client on the test PACS (not Overread's own code)."""
    url = os.environ.get("PACS_DICOMWEB_URL", "")
    require_service(bool(url), "a PACS (Orthanc)", 'run `eval "$(scripts/services.sh orthanc-start)"`')
    session = requests.Session()
    session.auth = (os.environ.get("PACS_USERNAME", ""), os.environ.get("PACS_PASSWORD", ""))
    return DICOMwebClient(url=url, session=session)


def _study_in_pacs(orthanc: DICOMwebClient, seed: int, slices: int = 16):
    study = make_ct_study(seed=seed, slices=slices, rows=128, columns=128, lesions=1)
    _forget(study.study_uid)  # an earlier run's copy, with what it pushed into it
    orthanc.store_instances(datasets=study.datasets)
    return study


def _forget(study_uid: str) -> None:
    """Deletes a study from the PACS through Orthanc's own REST API (DICOMweb has no delete)."""
    rest = os.environ.get("ORTHANC_URL", "")
    if not rest:
        return
    auth = (os.environ.get("PACS_USERNAME", ""), os.environ.get("PACS_PASSWORD", ""))
    found = requests.post(f"{rest}/tools/lookup", data=study_uid, auth=auth, timeout=30)
    found.raise_for_status()
    for item in found.json():
        if item.get("Type") == "Study":
            requests.delete(f"{rest}/studies/{item['ID']}", auth=auth, timeout=30).raise_for_status()


def _seg_for(study, instances):
    """A derived object as the AI would make it: a binary SEG of the lesion mask."""
    from viewer.store import store_open

    sources = []
    for instance in instances:
        with store_open(instance.storage_key) as file:
            import pydicom

            sources.append(pydicom.dcmread(file))
    sources.sort(key=lambda ds: int(ds.InstanceNumber))
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=(study.mask[: len(sources)] > 0).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=90,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Overread",
        manufacturer_model_name="tests",
        software_versions="1",
        device_serial_number="1",
    )


@pytest.mark.django_db
def test_it_pulls_a_study_and_pushes_a_derived_object_back_with_the_same_uids(
    orthanc, settings, tmp_path, capsys
):
    study = _study_in_pacs(orthanc, seed=41001)

    call_command("pacs_pull", "--study", study.study_uid)

    assert "16 stored" in capsys.readouterr().out
    pulled = Instance.objects.filter(series__study__study_uid=study.study_uid)
    assert {i.sop_instance_uid for i in pulled} == {ds.SOPInstanceUID for ds in study.datasets}
    assert Study.objects.get(study_uid=study.study_uid).patient.patient_id == study.patient_id
    assert AuditEvent.objects.filter(event_id="110107", study_uid=study.study_uid).exists()

    seg = _seg_for(study, pulled)
    from viewer.ingest.service import ingest_file

    seg_file = tmp_path / "seg.dcm"
    seg.save_as(seg_file)
    assert ingest_file(source=seg_file, name="seg.dcm", origin="import").status == "stored"
    call_command("pacs_push", "--series", seg.SeriesInstanceUID)

    found = orthanc.search_for_instances(study.study_uid, seg.SeriesInstanceUID)
    assert [item["00080018"]["Value"][0] for item in found] == [seg.SOPInstanceUID]
    assert found[0]["00080016"]["Value"][0] == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage


@pytest.mark.django_db
def test_pulling_twice_keeps_one_copy(orthanc, capsys):
    study = _study_in_pacs(orthanc, seed=41002)
    call_command("pacs_pull", "--study", study.study_uid)
    call_command("pacs_pull", "--study", study.study_uid)
    assert "16 already here" in capsys.readouterr().out
    assert Instance.objects.filter(series__study__study_uid=study.study_uid).count() == 16


@pytest.mark.django_db
def test_it_explains_a_study_the_pacs_does_not_have(orthanc):
    with pytest.raises(CommandError, match=r"the PACS has no study 1\.2\.3\.999999"):
        call_command("pacs_pull", "--study", "1.2.3.999999")


@pytest.mark.django_db
def test_it_explains_refused_credentials(orthanc, settings):
    settings.PACS_PASSWORD = "not-the-password"
    with pytest.raises(CommandError, match="the PACS answered 401"):
        call_command("pacs_pull", "--study", "1.2.3.4")


@pytest.mark.django_db
def test_it_rejects_a_malformed_uid_before_asking_the_pacs(orthanc):
    with pytest.raises(CommandError, match="not a valid Study Instance UID"):
        call_command("pacs_pull", "--study", "../../etc/passwd")


@pytest.mark.django_db(transaction=True)
def test_a_reader_searches_the_pacs_and_a_worker_pulls_the_study(
    orthanc, client, rita, celery_worker_process
):
    study = _study_in_pacs(orthanc, seed=41003)
    client.force_login(rita)

    page = client.get(reverse("pacs-search"), {"PatientID": study.patient_id, "search": "1"})
    assert page.status_code == 200
    assert study.study_uid.encode() in page.content

    started = client.post(reverse("pacs-pull-start"), {"study_uid": study.study_uid}, HTTP_HX_REQUEST="true")
    assert started.status_code == 200
    pull = PacsPull.objects.get(study_uid=study.study_uid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pull.refresh_from_db()
        if pull.finished:
            break
        time.sleep(0.5)
    assert pull.status == PacsPull.Status.SUCCEEDED, pull.error
    assert (pull.total, pull.stored, pull.rejected) == (16, 16, 0)
    status = client.get(reverse("pacs-pull-status", args=[pull.pk]))
    assert b"Succeeded: 16 stored" in status.content
    assert b"hx-trigger" not in status.content  # polling stops once the pull is done


@pytest.mark.django_db
def test_the_pacs_page_says_when_no_pacs_is_configured(client, rita, settings):
    settings.PACS_ENABLED = False
    client.force_login(rita)
    response = client.get(reverse("pacs-search"), {"PatientID": "x", "search": "1"})
    assert response.status_code == 200
    assert b"No PACS is configured" in response.content
    assert b"<form" not in response.content.split(b"<main>")[1]
    pull = client.post(reverse("pacs-pull-start"), {"study_uid": "1.2.3"})
    assert pull.status_code == 400
    assert b"no PACS is configured" in pull.content
    assert PacsPull.objects.count() == 0  # nothing queued to fail later


@pytest.mark.django_db
def test_annotators_may_not_use_the_pacs_page(client, anna):
    client.force_login(anna)
    assert client.get(reverse("pacs-search")).status_code == 403
    assert client.post(reverse("pacs-pull-start"), {"study_uid": "1.2.3"}).status_code == 403
    assert PacsPull.objects.count() == 0


@pytest.mark.django_db
def test_a_pull_whose_worker_died_is_finished_by_the_redelivered_task(rita, settings):
    from viewer.pacs import pacs_pull_execute

    settings.PACS_DICOMWEB_URL = "http://127.0.0.1:9/dicom-web"  # nothing listens: the pull fails fast
    pull = PacsPull.objects.create(study_uid="1.2.3.4", requested_by=rita)
    PacsPull.objects.filter(pk=pull.pk).update(status=PacsPull.Status.RUNNING, claimed_by="task-1")

    pacs_pull_execute(pull_pk=pull.pk, task_id="task-2")  # another delivery leaves it alone
    pull.refresh_from_db()
    assert pull.status == PacsPull.Status.RUNNING

    pacs_pull_execute(pull_pk=pull.pk, task_id="task-1")  # the redelivery runs it to an end
    pull.refresh_from_db()
    assert pull.status == PacsPull.Status.FAILED
    assert pull.error == "cannot reach the PACS at http://127.0.0.1:9/dicom-web"
