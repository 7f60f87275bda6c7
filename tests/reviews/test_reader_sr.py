"""The reader's SR carries the study-level verdict: the AI triage the reader saw beside its
score, and, in the report's Qualitative Evaluations, the agreement with that triage and the
unaided and final impressions, as the reader gave them."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any, cast

import highdicom as hd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from inference.derived import Person, codes, dciodvfy_check, dciodvfy_messages, derived_uid, findings_sr
from reviews.models import Reading
from reviews.services import project_studies_add
from tests.reviews.helpers import AiResult, api, stored_study
from viewer.models import Instance, Study
from viewer.store import store_open

pytestmark = pytest.mark.django_db

# Beyond ASCII on purpose: a reader's free text is stored as written.
UNAIDED = "Zwei Rundherde rechts, der größere ≥ 8 mm"
FINAL = "Two nodules, right lung; the larger one needs follow-up in 3 months."


def _stored_sr(sop_uid: str) -> tuple[bytes, Dataset]:
    instance = Instance.objects.get(sop_instance_uid=sop_uid)
    with store_open(instance.storage_key) as handle:
        content = handle.read()
    return content, pydicom.dcmread(io.BytesIO(content))


def _study_items(sr: Dataset) -> dict[tuple[str, str], Dataset]:
    """The items of the report's Qualitative Evaluations container, by concept name."""
    (container,) = [
        item
        for item in sr.ContentSequence
        if item.ValueType == "CONTAINER"
        and item.ConceptNameCodeSequence[0].CodeValue == codes.QUALITATIVE_EVALUATIONS.value
    ]
    assert container.RelationshipType == "CONTAINS"
    return {
        (
            item.ConceptNameCodeSequence[0].CodingSchemeDesignator,
            item.ConceptNameCodeSequence[0].CodeValue,
        ): item
        for item in container.ContentSequence
    }


def _key(code: Code) -> tuple[str, str]:
    return (code.scheme_designator, code.value)


def _coded(item: Dataset) -> tuple[str, str, str]:
    concept = item.ConceptCodeSequence[0]
    return (concept.CodingSchemeDesignator, concept.CodeValue, concept.CodeMeaning)


def _start(client: Any, study_uid: str) -> str:
    response = client.post("/api/v1/readings/", {"study_uid": study_uid}, format="json")
    assert response.status_code in (200, 201), response.content
    return f"/api/v1/readings/{response.json()['id']}/"


def _lock(client: Any, url: str, **body: str) -> dict[str, Any]:
    response = client.post(url + "lock/", {"version": 1, **body}, format="json")
    assert response.status_code == 200, response.content
    return cast(dict[str, Any], response.json())


def _decide(client: Any, url: str, version: int, body: dict[str, Any]) -> int:
    response = client.post(url + "decisions/", {"version": version, **body}, format="json")
    assert response.status_code == 201, response.content
    return int(response.json()["version"])


def _submit(client: Any, url: str, version: int, **verdict: str) -> dict[str, Any]:
    response = client.post(url + "submit/", {"version": version, **verdict}, format="json")
    assert response.status_code == 200, response.content
    return cast(dict[str, Any], response.json())


def test_the_submitted_sr_holds_the_verdict_the_reader_gave(in_project: AiResult, rita: Any) -> None:
    client = api(rita)
    url = _start(client, in_project.study.study_uid)
    version = _lock(client, url, unaided_impression=UNAIDED)["version"]
    version = _decide(client, url, version, {"kind": "accepted", "finding": 1, "confidence": 5})
    version = _decide(
        client,
        url,
        version,
        {"kind": "overridden", "finding": 2, "confidence": 4, "reason_code": "wrong_label"},
    )
    # The verdict comes with the submission, as the reading panel sends it.
    body = _submit(client, url, version, triage_agreement="disagree", final_impression=FINAL)

    content, sr = _stored_sr(body["sr_sop_uid"])
    assert dciodvfy_check(content) == [], dciodvfy_messages(content)
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    items = _study_items(sr)
    assert list(items) == [
        _key(codes.TRIAGE_AGREEMENT),
        _key(codes.UNAIDED_IMPRESSION),
        _key(codes.IMPRESSION),
    ]
    agreement = items[_key(codes.TRIAGE_AGREEMENT)]
    assert agreement.ValueType == "CODE"
    assert _coded(agreement) == (codes.LOCAL_SCHEME, codes.DISAGREE.value, codes.DISAGREE.meaning)
    assert items[_key(codes.UNAIDED_IMPRESSION)].ValueType == "TEXT"
    assert items[_key(codes.UNAIDED_IMPRESSION)].TextValue == UNAIDED
    assert items[_key(codes.IMPRESSION)].ValueType == "TEXT"
    assert items[_key(codes.IMPRESSION)].TextValue == FINAL

    # The AI triage the reader agreed or disagreed with sits beside the score it came from.
    report = cast(hd.sr.MeasurementReport, hd.sr.Comprehensive3DSR.from_dataset(sr).content)
    (study_group,) = report.get_image_measurement_groups()
    (score,) = study_group.get_measurements(name=codes.STUDY_SCORE)
    assert score.value == pytest.approx(in_project.job.study_score)
    (triage,) = study_group.get_qualitative_evaluations(name=codes.AI_TRIAGE)
    assert triage.value == codes.TRIAGE_LEVELS[in_project.job.triage]
    (person, _device) = report.get_observer_contexts()
    assert person.observer_identifying_attributes.name == "Reader^Rita"
    declared = {item.CodingSchemeDesignator for item in sr.CodingSchemeIdentificationSequence}
    assert codes.LOCAL_SCHEME in declared
    assert Reading.objects.get(sr_sop_uid=body["sr_sop_uid"]).final_impression == FINAL


def test_an_agreeing_reader_without_impressions_gets_the_agreement_alone(
    in_project: AiResult, rita: Any
) -> None:
    client = api(rita)
    url = _start(client, in_project.study.study_uid)
    version = _lock(client, url)["version"]
    for finding in (1, 2):
        version = _decide(client, url, version, {"kind": "accepted", "finding": finding, "confidence": 5})
    body = _submit(client, url, version, triage_agreement="agree", final_impression="   ")

    content, sr = _stored_sr(body["sr_sop_uid"])
    assert dciodvfy_check(content) == [], dciodvfy_messages(content)
    items = _study_items(sr)
    assert list(items) == [_key(codes.TRIAGE_AGREEMENT)]
    assert _coded(items[_key(codes.TRIAGE_AGREEMENT)])[1] == codes.AGREE.value


def test_a_reading_without_ai_or_findings_still_records_its_impression(
    project: Any, rita: Any, store: Any
) -> None:
    synthetic = stored_study(seed=21, lesions=1)
    study = Study.objects.get(study_uid=synthetic.study_uid)
    project_studies_add(project=project, studies=[study])
    client = api(rita)
    url = _start(client, study.study_uid)
    locked = _lock(client, url)
    assert (locked["phase"], locked["ai"]) == ("locked", None)
    draft = client.patch(url, {"version": locked["version"], "final_impression": "No nodule."}, format="json")
    assert draft.status_code == 200, draft.content
    body = _submit(client, url, draft.json()["version"])

    assert body["seg_sop_uid"] is None  # nothing to segment
    content, sr = _stored_sr(body["sr_sop_uid"])
    assert dciodvfy_check(content) == [], dciodvfy_messages(content)
    items = _study_items(sr)
    assert list(items) == [_key(codes.IMPRESSION)]  # no AI: no agreement, no score
    assert items[_key(codes.IMPRESSION)].TextValue == "No nodule."
    report = cast(hd.sr.MeasurementReport, hd.sr.Comprehensive3DSR.from_dataset(sr).content)
    assert report.get_image_measurement_groups() == []
    assert report.get_volumetric_roi_measurement_groups() == []


def test_the_writer_refuses_study_items_it_cannot_write(case: AiResult) -> None:
    arguments: dict[str, Any] = {
        "source": case.synthetic.datasets,
        "seg": None,
        "findings": [],
        "series_uid": derived_uid("test", "sr-series"),
        "sop_uid": derived_uid("test", "sr"),
        "series_number": 9102,
        "content_datetime": dt.datetime(2025, 3, 4, 5, 6, 7),
        "observer": Person(name="Reader^Rita"),
    }
    with pytest.raises(ValueError, match="needs text"):
        findings_sr(**arguments, study_score=None, study_notes=[(codes.IMPRESSION, "  ")])
    with pytest.raises(ValueError, match="needs the study score"):
        findings_sr(
            **arguments, study_score=None, study_triage=codes.URGENT, study_notes=[(codes.IMPRESSION, "x")]
        )
    with pytest.raises(ValueError, match="needs a finding, a study score or a study-level evaluation"):
        findings_sr(**arguments, study_score=None)
