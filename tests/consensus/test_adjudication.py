"""The adjudicator's reference standard: recorded with provenance, versioned (a new one
supersedes, PostgreSQL refuses to change one), checked field by field; the project's
dashboard figures; and the reference standards in the feedback export."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client

from audit.models import AuditEvent
from reviews.consensus import cohen_kappa, dice, fleiss_kappa, krippendorff_alpha
from reviews.masks import mask_load
from reviews.models import ConsensusCase, Reading, ReferenceStandard
from reviews.services import FeedbackFilter, feedback_export_write, project_studies_add
from reviews.services.consensus.export import REFERENCE_FIELDS
from reviews.tasks import consensus_case_compute_run
from tests.conftest import require_postgresql
from tests.consensus.helpers import grown, read, stored_case
from tests.reviews.helpers import api, encode_mask

pytestmark = pytest.mark.django_db

SOLID = {"nodule_type": "solid", "follow_up": "yes"}
GLASS = {"nodule_type": "ground_glass", "follow_up": "no"}


@pytest.fixture
def compared(consensus, rita, rob, store):
    """A case both read (Rob a pixel wider, with other answers), compared: (case, its row)."""
    case = stored_case(seed=51, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [case.lesion(1)], SOLID)
    read(rob, case, [grown(case.lesion(1))], GLASS)
    row = ConsensusCase.objects.get(entry__study=case.study)
    consensus_case_compute_run(case_pk=row.pk)
    row.refresh_from_db()
    assert row.status == "adjudication"
    return case, row


def _volume(mask, case):
    volume = np.zeros(case.lesions.shape, dtype=bool)
    for z, plane in mask.items():
        volume[z] = plane
    return volume


def _url(row):
    return f"/api/v1/consensus/cases/{row.pk}/reference/"


def test_the_reference_is_recorded_with_its_provenance(compared, adi):
    case, row = compared
    client = api(adi)
    Reading.objects.filter(reader__username="rob").update(ai_seen_before=True)
    before = client.get(f"/api/v1/consensus/cases/{row.pk}/").json()
    assert [r["reader"] for r in before["reads"]] == ["rita", "rob"]
    sight = [(r["read_with_ai"], r["ai_seen_before"]) for r in before["reads"]]
    assert sight == [(False, False), (False, True)]
    assert before["reads"][0]["answers"] == SOLID
    assert before["reads"][1]["answers"] == GLASS
    finding = before["reads"][1]["findings"][0]
    assert (finding["label"], finding["voxels"]) == ("nodule", int(grown(case.lesion(1)).sum()))
    mask = client.get(finding["mask_url"]).json()
    assert set(mask["slices"]) == set(encode_mask(grown(case.lesion(1)), case.slice_uids))
    assert before["fusion"]["staple"]["readers"][0]["reader"] == "rita"
    assert before["reference"] is None

    recorded = client.post(
        _url(row),
        {
            "version": 0,
            "source": "staple",
            "answers": SOLID,
            "rationale": "Rob's margin includes vessel wall.",
        },
        format="json",
    )
    assert recorded.status_code == 201, recorded.content
    body = recorded.json()
    reference = body["reference"]
    assert (body["status"], body["version"], reference["version"]) == ("adjudicated", 1, 1)
    assert reference["source"] == "staple"
    assert reference["fusion"] == "staple"
    assert reference["readings"] == row.computed_from
    assert reference["adjudicator"] == "adi"
    assert reference["answers"] == SOLID
    assert reference["findings"][0]["label"] == "nodule"
    saved = ReferenceStandard.objects.get(pk=reference["id"])
    chosen = _volume(mask_load(saved.mask_key), case)
    assert np.array_equal(chosen, _volume(mask_load(row.staple_key), case))
    assert reference["mask_voxels"] == int(chosen.sum())
    by_reader = {r["reader"]: r for r in reference["reader_agreement"]}
    assert by_reader["rita"]["answers_matched"] == 2
    assert by_reader["rob"]["answers_matched"] == 0
    assert by_reader["rita"]["dice"] == pytest.approx(dice(case.lesion(1), chosen), abs=1e-6)
    assert by_reader["rob"]["dice"] == pytest.approx(dice(grown(case.lesion(1)), chosen), abs=1e-6)
    row.refresh_from_db()
    assert row.status == "adjudicated"
    recorded_event = AuditEvent.objects.filter(detail__contains='"reference standard recorded"').get()
    assert recorded_event.detail_data["case"] == row.pk
    assert recorded_event.study_uid == case.study.study_uid
    after = client.get(f"/api/v1/consensus/cases/{row.pk}/").json()
    assert after["reference"]["id"] == reference["id"]
    assert len(after["references"]) == 1
    # Adjudicated cases leave the queue.
    assert client.get(f"/api/v1/consensus/projects/{row.project_id}/cases/").json()["results"] == []


def test_a_second_adjudication_supersedes_the_first_and_a_stale_one_is_refused(compared, adi, rita, ada):
    case, row = compared
    rita_reading = row.computed_from[0]
    first = api(adi).post(
        _url(row),
        {"version": 0, "source": f"reading:{rita_reading}", "answers": SOLID, "rationale": "Rita's read."},
        format="json",
    )
    assert first.status_code == 201, first.content
    assert first.json()["reference"]["readings"] == [rita_reading]
    stale = api(ada).post(
        _url(row), {"version": 0, "source": "majority", "answers": GLASS, "rationale": "x"}, format="json"
    )
    assert stale.status_code == 409
    assert stale.json()["field"] == "version"
    assert stale.json()["version"] == 1
    drawn = grown(grown(case.lesion(1)))  # wider than either read
    second = api(ada).post(
        _url(row),
        {
            "version": 1,
            "source": "edited",
            "fusion": "majority",
            "mask": encode_mask(drawn, case.slice_uids),
            "answers": GLASS,
            "rationale": "Both reads stop short of the spiculation.",
        },
        format="json",
    )
    assert second.status_code == 201, second.content
    references = list(ReferenceStandard.objects.filter(case=row).order_by("version"))
    assert [r.version for r in references] == [1, 2]
    assert references[1].supersedes == references[0]
    assert (references[1].source, references[1].fusion, references[1].adjudicator.username) == (
        "edited",
        "majority",
        "ada",
    )
    assert references[1].mask_voxels == int(drawn.sum())
    current = ReferenceStandard.objects.filter(case=row, superseded_by__isnull=True).get()
    assert current == references[1]
    history = api(adi).get(f"/api/v1/consensus/cases/{row.pk}/").json()["references"]
    assert [r["version"] for r in history] == [1, 2]
    old_mask = api(adi).get(f"/api/v1/consensus/cases/{row.pk}/masks/reference/?version=1").json()
    assert set(old_mask["slices"]) == set(encode_mask(case.lesion(1), case.slice_uids))


@pytest.mark.parametrize(
    "statement",
    ["UPDATE reviews_referencestandard SET rationale = 'changed'", "DELETE FROM reviews_referencestandard"],
)
def test_postgresql_refuses_to_change_a_reference(compared, adi, statement):
    require_postgresql()
    _, row = compared
    api(adi).post(
        _url(row), {"version": 0, "source": "majority", "answers": SOLID, "rationale": "ok"}, format="json"
    )
    assert ReferenceStandard.objects.count() == 1
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    with pytest.raises(ValueError, match="append-only"):
        ReferenceStandard.objects.all().update(rationale="changed")
    assert ReferenceStandard.objects.get().rationale == "ok"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "majority", "answers": SOLID, "rationale": "  "}, "rationale"),
        ({"source": "majority", "answers": SOLID}, "rationale"),
        ({"source": "best", "answers": SOLID, "rationale": "r"}, "source"),
        ({"source": "reading:999999", "answers": SOLID, "rationale": "r"}, "source"),
        ({"source": "majority", "answers": {"nodule_type": "solid"}, "rationale": "r"}, "answers"),
        ({"source": "majority", "answers": {**SOLID, "colour": "red"}, "rationale": "r"}, "answers"),
        ({"source": "edited", "answers": SOLID, "rationale": "r"}, "mask"),
        ({"source": "edited", "answers": SOLID, "rationale": "r", "mask": {"1.2.3": "AAAA"}}, "mask"),
        ({"source": "majority", "answers": SOLID, "rationale": "r", "mask": {"1.2.3": "AAAA"}}, "mask"),
        ({"answers": SOLID, "rationale": "r"}, "source"),
        ({"source": "majority", "answers": SOLID, "rationale": "r", "fusion": "staple"}, "fusion"),
    ],
)
def test_bad_input_gets_a_specific_400_and_records_nothing(compared, adi, body, field):
    _, row = compared
    refused = api(adi).post(_url(row), {"version": 0, **body}, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["field"] == field
    assert not ReferenceStandard.objects.exists()
    row.refresh_from_db()
    assert row.status == "adjudication"


def test_a_case_still_collecting_reads_cannot_be_adjudicated(consensus, rita, adi, store):
    case = stored_case(seed=52, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [case.lesion(1)], SOLID)
    row = ConsensusCase.objects.get(entry__study=case.study)
    early = api(adi).post(
        _url(row), {"version": 0, "source": "majority", "answers": SOLID, "rationale": "r"}, format="json"
    )
    assert early.status_code == 409
    assert api(adi).get(f"/api/v1/consensus/cases/{row.pk}/masks/majority/").status_code == 404


def test_the_dashboard_has_progress_and_the_librarys_agreement(consensus, rita, rob, adi, store):
    answers = [(SOLID, SOLID), (SOLID, GLASS), (GLASS, GLASS)]
    rows, lesions = [], []
    for seed, (first, second) in zip((61, 62, 63), answers, strict=True):
        case = stored_case(seed=seed, lesions=1)
        lesions.append(case.lesion(1))
        project_studies_add(project=consensus, studies=[case.study])
        read(rita, case, [case.lesion(1)], first)
        read(rob, case, [grown(case.lesion(1))], second)
        rows.append(ConsensusCase.objects.get(entry__study=case.study))
        consensus_case_compute_run(case_pk=rows[-1].pk)
    waiting = stored_case(seed=64, lesions=1)
    project_studies_add(project=consensus, studies=[waiting.study])
    api(adi).post(
        _url(rows[1]), {"version": 0, "source": "majority", "answers": SOLID, "rationale": "r"}, format="json"
    )

    board = api(adi).get(f"/api/v1/consensus/projects/{consensus.pk}/")
    assert board.status_code == 200
    body = board.json()
    progress = body["progress"]
    assert progress["cases"]["total"] == 4
    assert progress["cases"]["reads_done"] == 6
    assert progress["cases"]["reads_needed"] == 8
    assert progress["cases"]["by_status"]["collecting"] == 1
    assert progress["cases"]["by_status"]["adjudicated"] == 1
    readers = {r["reader"]: r for r in progress["readers"]}
    assert (readers["rita"]["assigned"], readers["rita"]["submitted"], readers["rita"]["open"]) == (4, 3, 1)

    agreement = body["agreement"]
    assert agreement["cases"] == 3
    table = [[a["nodule_type"], b["nodule_type"]] for a, b in answers]
    follow = {q["code"]: q for q in agreement["questions"]}
    nodule = follow["nodule_type"]
    choices = ["solid", "part_solid", "ground_glass"]
    assert nodule["cohen_kappa"]["value"] == pytest.approx(cohen_kappa(table, categories=choices), abs=1e-6)
    assert nodule["fleiss_kappa"]["value"] == pytest.approx(fleiss_kappa(table, categories=choices), abs=1e-6)
    assert nodule["krippendorff_alpha"]["value"] == pytest.approx(
        krippendorff_alpha(table, categories=choices), abs=1e-6
    )
    dices = agreement["worst_dice"]
    expected = sorted(round(dice(lesion, grown(lesion)), 6) for lesion in lesions)
    assert dices["values"] == pytest.approx(expected, abs=1e-6)
    assert dices["min"] == pytest.approx(expected[0], abs=1e-6)
    assert sum(dices["histogram"]["counts"]) == 3
    assert agreement["worst_hd95_mm"]["max"] == pytest.approx(1.5)
    vs_reference = {r["reader"]: r for r in agreement["readers_vs_reference"]}
    assert vs_reference["rita"]["answer_agreement"] == 1.0
    assert vs_reference["rob"]["answer_agreement"] == 0.0
    assert vs_reference["rita"]["cases"] == 1


def test_a_case_with_a_finding_one_reader_missed_counts_at_zero_as_in_its_row(
    consensus, rita, rob, adi, store
):
    case = stored_case(seed=65, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [case.lesion(1)], SOLID)
    read(rob, case, [], SOLID)
    row = ConsensusCase.objects.get(entry__study=case.study)
    consensus_case_compute_run(case_pk=row.pk)
    row.refresh_from_db()
    assert row.worst_dice == 0.0  # the case list shows 0.00

    agreement = api(adi).get(f"/api/v1/consensus/projects/{consensus.pk}/").json()["agreement"]
    assert agreement["worst_dice"]["values"] == [0.0]
    assert agreement["cases_with_misses"] == 1
    client = Client()
    client.force_login(adi)
    page = client.get(f"/consensus/projects/{consensus.pk}/").content.decode()
    assert "No case has been compared yet" not in page
    assert "Histogram of each case's worst Dice" in page
    assert 'data-testid="few-cases"' in page  # one case: the coefficients come with a caveat


def test_the_export_writes_one_line_per_current_reference_with_its_mask(compared, adi, tmp_path):
    case, row = compared
    client = api(adi)
    client.post(
        _url(row), {"version": 0, "source": "majority", "answers": SOLID, "rationale": "first"}, format="json"
    )
    client.post(
        _url(row),
        {
            "version": 1,
            "source": f"reading:{row.computed_from[1]}",
            "answers": GLASS,
            "rationale": "Rob was right.",
        },
        format="json",
    )
    folder = tmp_path / "reference"
    call_command("export_feedback", "-o", str(folder), "--reference")
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 1  # the current reference only
    (line,) = lines
    assert tuple(line) == REFERENCE_FIELDS
    assert (line["version"], line["source"], line["readings"], line["readers"]) == (
        2,
        f"reading:{row.computed_from[1]}",
        [row.computed_from[1]],
        ["rob"],
    )
    assert (line["project"], line["case_id"], line["study_uid"]) == (
        "Nodule consensus",
        row.pk,
        case.study.study_uid,
    )
    assert (line["adjudicator"], line["rationale"], line["answers"]) == ("adi", "Rob was right.", GLASS)
    image = nib.load(folder / line["mask_nifti"])
    volume = np.asarray(image.dataobj).transpose(2, 1, 0)
    assert np.array_equal(volume != 0, grown(case.lesion(1)))
    assert np.allclose(np.abs(np.diag(image.affine)[:3]), [1.5, 1.5, 5.0])
    exported = AuditEvent.objects.filter(event_id="110106").order_by("-pk").first()
    assert exported is not None
    assert exported.detail_data["what"] == "reference standards"
    assert exported.detail_data["references"] == 1

    # The same writer behind the background export; the decisions' export is unchanged by it.
    assert (
        feedback_export_write(folder=tmp_path / "again", feedback_filter=FeedbackFilter(reference=True)) == 1
    )
    assert FeedbackFilter.from_params({"reference": "1"}).as_params() == {"reference": "1"}
    with pytest.raises(ValueError, match="project, since and until only"):
        FeedbackFilter.from_params({"reference": "1", "decision": "added"})
