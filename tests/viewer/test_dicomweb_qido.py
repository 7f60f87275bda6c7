"""QIDO-RS: searching studies, series and instances as OHIF, scripts and PACS browsers do."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.viewer.dicomweb_helpers import index_file, make_ct_series

pytestmark = pytest.mark.django_db


def _study(**header):
    """A study of one series of two slices with the given header attributes; returns its instances."""
    count = header.pop("count", 2)
    return [index_file(data) for data in make_ct_series(count, **header)]


@pytest.fixture
def cast(empty_store):
    """Three patients' studies to search among."""
    return {
        "jane": _study(
            PatientID="P-1", PatientName="Doe^Jane", StudyDate="20240315", AccessionNumber="A-100"
        ),
        "john": _study(
            PatientID="P-2",
            PatientName="Smith^John",
            StudyDate="20231102",
            StudyTime="143000",
            AccessionNumber="A-200",
            StudyDescription="MR Knee",
            Modality="MR",
        ),
        "anna": _study(
            PatientID="P-3",
            PatientName="van der Berg^Anna",
            StudyDate="20250101",
            StudyTime="080000",
            AccessionNumber="B-300",
            StudyDescription="CT Chest low dose",
        ),
    }


def _uids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {result["0020000D"]["Value"][0] for result in response.json()}


def _study_uid(cast, who) -> str:
    return cast[who][0].series.study.study_uid


def test_a_study_result_carries_the_standard_attributes(cast, reader):
    response = reader.get("/dicomweb/studies", {"PatientID": "P-1"})
    assert response["Content-Type"] == "application/dicom+json"
    (study,) = response.json()
    uid = _study_uid(cast, "jane")
    assert study["0020000D"] == {"vr": "UI", "Value": [uid]}
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert study["00080020"]["Value"] == ["20240315"]
    assert study["00080050"]["Value"] == ["A-100"]
    assert study["00080061"]["Value"] == ["CT"]
    assert study["00201206"]["Value"] == [1]
    assert study["00201208"]["Value"] == [2]
    assert study["00081190"]["Value"] == [f"http://testserver/dicomweb/studies/{uid}"]
    assert study["00080056"]["Value"] == ["ONLINE"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"jane", "john", "anna"}),
        ({"PatientName": "Doe^Jane"}, {"jane"}),
        ({"PatientName": "doe^jane"}, {"jane"}),
        ({"PatientName": "*o*"}, {"jane", "john"}),
        ({"PatientName": "Sm?th*"}, {"john"}),
        ({"PatientName": "john", "fuzzymatching": "true"}, {"john"}),
        ({"PatientName": "an be", "fuzzymatching": "true"}, {"anna"}),
        ({"PatientName": "jo sm", "fuzzymatching": "true"}, {"john"}),
        ({"PatientName": "jo sm", "fuzzymatching": "false"}, set()),
        ({"PatientID": "P-2"}, {"john"}),
        ({"PatientID": "p-2"}, set()),
        ({"AccessionNumber": "A-*"}, {"jane", "john"}),
        ({"StudyDate": "20240315"}, {"jane"}),
        ({"StudyDate": "20240101-20241231"}, {"jane"}),
        ({"StudyDate": "-20240101"}, {"john"}),
        ({"StudyDate": "20240101-"}, {"jane", "anna"}),
        ({"StudyTime": "1400-1500"}, {"john"}),
        ({"StudyTime": "-08"}, {"anna"}),
        ({"ModalitiesInStudy": "MR"}, {"john"}),
        ({"ModalitiesInStudy": "MR,CT"}, {"jane", "john", "anna"}),
        ({"00081030": "*chest*"}, {"jane", "anna"}),
        ({"StudyDescription": "mr knee"}, {"john"}),
    ],
)
def test_studies_match(cast, reader, params, expected):
    uids = {_study_uid(cast, who): who for who in cast}
    assert {uids[uid] for uid in _uids(reader.get("/dicomweb/studies", params))} == expected


def test_study_uids_match_as_a_list(cast, reader):
    wanted = f"{_study_uid(cast, 'jane')},{_study_uid(cast, 'anna')}"
    assert _uids(reader.get("/dicomweb/studies", {"StudyInstanceUID": wanted})) == {
        _study_uid(cast, "jane"),
        _study_uid(cast, "anna"),
    }


def test_paging_with_limit_and_offset_says_when_more_results_wait(cast, reader):
    first = reader.get("/dicomweb/studies", {"limit": "2"})
    assert len(first.json()) == 2
    assert "additional results" in first["Warning"]
    rest = reader.get("/dicomweb/studies", {"limit": "2", "offset": "2"})
    assert len(rest.json()) == 1
    assert "Warning" not in rest
    assert _uids(first) | _uids(rest) == {_study_uid(cast, who) for who in cast}
    assert reader.get("/dicomweb/studies", {"limit": "5000"}).status_code == 400


def test_series_of_a_study(cast, reader):
    study_uid = _study_uid(cast, "john")
    response = reader.get(f"/dicomweb/studies/{study_uid}/series")
    (series,) = response.json()
    assert series["0020000E"]["Value"] == [cast["john"][0].series.series_uid]
    assert series["00080060"]["Value"] == ["MR"]
    assert series["00201209"]["Value"] == [2]
    assert series["0020000D"]["Value"] == [study_uid]
    assert series["00081190"]["Value"][0].endswith(
        f"/studies/{study_uid}/series/{cast['john'][0].series.series_uid}"
    )


def test_series_across_studies_carry_their_study(cast, reader):
    response = reader.get("/dicomweb/series", {"Modality": "CT", "PatientID": "P-3"})
    (series,) = response.json()
    assert series["00100020"]["Value"] == ["P-3"]
    assert series["0020000D"]["Value"] == [_study_uid(cast, "anna")]


def test_instances_of_a_series_in_order_with_their_geometry(cast, reader):
    first = cast["jane"][0]
    url = f"/dicomweb/studies/{first.series.study.study_uid}/series/{first.series.series_uid}/instances"
    results = reader.get(url).json()
    assert [r["00200013"]["Value"][0] for r in results] == [1, 2]
    assert results[0]["00080018"]["Value"] == [first.sop_instance_uid]
    assert results[0]["00280010"]["Value"] == [16]
    assert results[0]["00280100"]["Value"] == [16]
    assert results[0]["00200032"]["Value"] == [0, 0, 0]


def test_instances_everywhere_and_by_sop_instance_uid(cast, reader):
    wanted = cast["anna"][1]
    results = reader.get("/dicomweb/instances", {"SOPInstanceUID": wanted.sop_instance_uid}).json()
    assert [r["00080018"]["Value"][0] for r in results] == [wanted.sop_instance_uid]
    assert results[0]["00100020"]["Value"] == ["P-3"]  # the study's attributes come along
    in_study = reader.get(f"/dicomweb/studies/{_study_uid(cast, 'anna')}/instances").json()
    assert len(in_study) == 2


def test_instance_includefield_takes_attributes_from_the_stored_metadata(cast, reader):
    first = cast["jane"][0]
    url = f"/dicomweb/studies/{first.series.study.study_uid}/series/{first.series.series_uid}/instances"
    (result, _) = reader.get(url, {"includefield": "WindowCenter,00281053"}).json()
    assert result["00281050"]["Value"] == [40]
    assert result["00281053"]["Value"] == [1]
    everything = reader.get(url, {"includefield": "all"}).json()[0]
    assert everything["00281052"]["Value"] == [-1024]
    assert "7FE00010" not in everything  # bulk data never goes into search results


def test_an_includefield_the_study_level_cannot_return_is_named_in_a_warning(cast, reader):
    response = reader.get("/dicomweb/studies", {"includefield": "00081030,00080060"})
    assert response.status_code == 200
    assert "00080060" in response["Warning"]


def test_dicom_xml_is_not_acceptable(cast, reader):
    assert reader.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+xml").status_code == 406
    assert reader.get("/dicomweb/studies", HTTP_ACCEPT="application/json").status_code == 200


def test_a_search_costs_the_same_queries_for_one_study_or_ten(empty_store, reader):
    _study(PatientID="Q-0")

    def searches() -> int:
        with CaptureQueriesContext(connection) as queries:
            for url in ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"):
                assert reader.get(url).status_code == 200
        return len(queries)

    searches()  # the first requests of a session also renew it (config.sessions)
    few = searches()
    for index in range(1, 10):
        _study(PatientID=f"Q-{index}", count=3)
    assert searches() == few
