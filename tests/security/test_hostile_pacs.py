"""Hostile instances from the PACS, and hostile input to the PACS page and command.

A PACS is another hospital system, not a trusted one: what it sends goes through the same
ingest checks as an upload. Each hostile instance sits in a study beside a good one: the pull
stores the good one, refuses the hostile one by name with its reason and exits 1. Needs the
test PACS (Orthanc): locally these skip unless PACS_DICOMWEB_URL points at one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator

import pydicom
import pytest
import requests
from django.core.management import CommandError, call_command
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from tests.conftest import require_service
from tests.security.helpers import SCRIPT, assert_escaped, keeps_serving
from tests.viewer.conftest import ct_dataset, dicom_file, part10, stored_files, with_pixel_header
from viewer.models import Instance, PacsPull

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning"),  # the hostile UIDs under test
]


class Pacs:
    """The test PACS through Orthanc's own REST API (DICOMweb has no delete); what a test puts
    in is removed when it ends."""

    def __init__(self, rest: str, auth: tuple[str, str]) -> None:
        self.rest, self.auth = rest, auth
        self.studies: set[str] = set()

    def put(self, data: bytes) -> None:
        answer = requests.post(f"{self.rest}/instances", data=data, auth=self.auth, timeout=30)
        answer.raise_for_status()
        self.studies.add(str(pydicom.dcmread(io.BytesIO(data), force=True).StudyInstanceUID))

    def forget(self) -> None:
        for study_uid in self.studies:
            found = requests.post(f"{self.rest}/tools/lookup", data=study_uid, auth=self.auth, timeout=30)
            for item in found.json():
                if item.get("Type") == "Study":
                    requests.delete(f"{self.rest}/studies/{item['ID']}", auth=self.auth, timeout=30)


@pytest.fixture
def pacs(settings) -> Iterator[Pacs]:
    rest = os.environ.get("ORTHANC_URL", "")
    require_service(
        bool(rest and os.environ.get("PACS_DICOMWEB_URL")),
        "a PACS (Orthanc)",
        'run `eval "$(scripts/services.sh orthanc-start)"`',
    )
    settings.PACS_ENABLED = True
    held = Pacs(rest, (os.environ.get("PACS_USERNAME", ""), os.environ.get("PACS_PASSWORD", "")))
    yield held
    held.forget()


def pull(study_uid: str) -> tuple[str, str]:
    """Runs `pacs_pull --study`; expects exit status 1 and returns (its error, its stderr)."""
    err = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("pacs_pull", "--study", study_uid, stdout=io.StringIO(), stderr=err)
    return str(failed.value), err.getvalue()


def _beside_a_good_one(hostile: Callable[[Dataset], bytes]) -> tuple[Dataset, Dataset, bytes]:
    good = ct_dataset()
    bad = ct_dataset(StudyInstanceUID=good.StudyInstanceUID, SeriesInstanceUID=good.SeriesInstanceUID)
    return good, bad, hostile(bad)


def _header_claiming_65535_squared(ds: Dataset) -> bytes:
    return with_pixel_header(part10(ds), rows=65535, columns=65535)


def _pixel_data_twice_as_long(ds: Dataset) -> bytes:
    ds.PixelData = ds.PixelData * 2
    return part10(ds)


def _htj2k(ds: Dataset) -> bytes:
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    return part10(ds, "1.2.840.10008.1.2.4.201")


def _frames(ds: Dataset) -> bytes:
    ds.NumberOfFrames = 2147483647
    return part10(ds)


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (_header_claiming_65535_squared, "Rows 65535 exceeds the limit of 32768"),
        (_pixel_data_twice_as_long, "Pixel Data holds 256 bytes, but 8x8 pixels x 1 frames"),
        (_htj2k, "transfer syntax 1.2.840.10008.1.2.4.201 (High-Throughput JPEG 2000"),
        (_frames, "8x8 pixels x 2147483647 frames x 1 samples x 16 bits decode to 274877906816 bytes"),
    ],
    ids=["rows_columns_65535", "pixel_data_too_long", "htj2k", "number_of_frames_2147483647"],
)
def test_a_pull_refuses_the_hostile_instance_by_name_and_stores_the_rest(hostile, reason, pacs, empty_store):
    good, bad, data = _beside_a_good_one(hostile)
    pacs.put(part10(good))
    pacs.put(data)

    error, listed = pull(good.StudyInstanceUID)

    assert error == "1 instance(s) rejected"
    assert f"  rejected {bad.SOPInstanceUID}: {reason}" in listed
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [good.SOPInstanceUID]
    assert stored_files(empty_store) == {Instance.objects.get().storage_key}


def test_a_pacs_file_whose_codestream_claims_3722445056_columns_is_refused(pacs, untouched, token):
    data = dicom_file("JPEG2000-embedded-sequence-delimiter.dcm").read_bytes()
    study_uid = str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)
    pacs.put(data)

    error, listed = pull(study_uid)

    assert error == "1 instance(s) rejected"
    assert "the compressed frame claims 1024x3722445056 pixels" in listed
    untouched()
    keeps_serving(token)


def test_a_pacs_listing_an_instance_uid_with_dot_dot_gets_that_instance_refused(pacs, empty_store):
    good = ct_dataset()
    bad = ct_dataset(
        StudyInstanceUID=good.StudyInstanceUID,
        SeriesInstanceUID=good.SeriesInstanceUID,
        SOPInstanceUID="../../etc/passwd",
    )
    pacs.put(part10(good))
    pacs.put(part10(bad))

    error, listed = pull(good.StudyInstanceUID)

    assert error == "1 instance(s) rejected"
    assert "SOP Instance UID (0008,0018) '../../etc/passwd' is not a valid DICOM UID" in listed
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [good.SOPInstanceUID]


@pytest.mark.parametrize(
    "study_uid", ["../../etc/passwd", "1.2.3\x00", SCRIPT], ids=["dot_dot", "nul", "script"]
)
def test_the_pull_form_refuses_a_hostile_study_uid_with_400(study_uid, pacs, session, untouched):
    response = session.post("/pacs/pulls/", {"study_uid": study_uid})

    assert response.status_code == 400
    assert "not a valid Study Instance UID" in response.content.decode()
    assert_escaped(response.content.decode(), repr(study_uid[:80]))
    assert not PacsPull.objects.exists()
    untouched()


def test_the_pull_command_refuses_a_hostile_study_uid(pacs, untouched):
    with pytest.raises(CommandError, match=r"not a valid Study Instance UID: '\.\./\.\./etc/passwd'"):
        call_command("pacs_pull", "--study", "../../etc/passwd", stdout=io.StringIO())
    untouched()


def test_the_search_page_shows_what_a_pacs_sends_as_text(pacs, session):
    ds = ct_dataset(PatientID="HOSTILE-PACS-1", PatientName=SCRIPT, StudyDescription=SCRIPT)
    pacs.put(part10(ds))

    response = session.get("/pacs/", {"PatientID": "HOSTILE-PACS-1"})

    page = response.content.decode()
    assert response.status_code == 200
    assert ds.StudyInstanceUID in page
    assert_escaped(page, SCRIPT)


def test_the_search_page_shows_hostile_search_values_as_text(pacs, session):
    response = session.get("/pacs/", {"PatientName": SCRIPT, "AccessionNumber": '"><svg onload=alert(1)>'})

    page = response.content.decode()
    assert response.status_code == 200
    assert_escaped(page, SCRIPT)
    assert_escaped(page, '"><svg onload=alert(1)>')
