"""Exports in every format carry everything needed to re-verify, and are safe to open."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle

from audit.canonical import CHAINED_FIELDS
from audit.codes import EventID
from audit.exporters import FORMATS, export_chunks
from audit.exporters.csv_export import neutralise
from audit.filters import AuditFilter
from audit.models import AuditEvent
from audit.selectors import audit_event_last_id, audit_event_rows
from audit.services import audit_record
from tests.audit.helpers import reference_hash
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

INTEGER_FIELDS = {"id", "outcome", "user_id", "inference_job_id"}
NULLABLE_FIELDS = {"user_id", "inference_job_id"}

# RFC 5424 section 6 ABNF, transcribed: HEADER SP STRUCTURED-DATA [SP MSG].
_PRINTUSASCII = r"[\x21-\x7e]"
_SD_NAME = r"[!#-<>-\\^-~]{1,32}"  # PRINTUSASCII except '=', SP, ']', '"'
_PARAM_VALUE = r'(?:[^"\\\]]|\\["\\\]])*'
_SD_ELEMENT = rf'\[{_SD_NAME}(?: {_SD_NAME}="{_PARAM_VALUE}")*\]'
RFC5424 = re.compile(
    r"<(?:[0-9]|[1-9][0-9]|1[0-8][0-9]|19[01])>"  # PRI: 0..191
    r"[1-9][0-9]{0,2} "  # VERSION
    r"(?:-|[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])) "  # TIMESTAMP
    rf"(?:-|{_PRINTUSASCII}{{1,255}}) "  # HOSTNAME
    rf"(?:-|{_PRINTUSASCII}{{1,48}}) "  # APP-NAME
    rf"(?:-|{_PRINTUSASCII}{{1,128}}) "  # PROCID
    rf"(?:-|{_PRINTUSASCII}{{1,32}}) "  # MSGID
    rf"(?P<sd>-|(?:{_SD_ELEMENT})+)"  # STRUCTURED-DATA
    r"(?: (?P<msg>\ufeff.*))?",  # MSG (MSG-UTF8: BOM then UTF-8)
    re.DOTALL,
)


@pytest.fixture
def tricky_events(make_events, rita):
    """Events whose text would run as spreadsheet formulas, with quotes, commas and non-ASCII."""
    make_events(3)
    audit_record(
        event=EventID.QUERY,
        action="E",
        user=rita,
        patient_id='=HYPERLINK("http://evil","x")',
        accession="+1-555",
        study_uid="@SUM(A1)",
        outcome_reason='-2+3, "quoted" ]bracket\\',
        model_version="'already quoted",
        inference_job_id=7,
        detail={"query": "name=Ünal,*", "n": 1},
    )
    return list(AuditEvent.objects.order_by("id"))


def _export(export_format: str, audit_filter: AuditFilter | None = None) -> str:
    rows = audit_event_rows(audit_filter=audit_filter or AuditFilter(), up_to_id=audit_event_last_id())
    return "".join(export_chunks(FORMATS[export_format], rows))


def _assert_reverifies(records: list[dict]) -> None:
    """Each record's hash re-computes from its fields; consecutive records link."""
    assert records
    for record in records:
        assert record["hash"] == reference_hash(record), record["id"]
    for earlier, later in itertools.pairwise(records):
        assert later["prev_hash"] == earlier["hash"]


# --- CSV -------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@x", "\tx", "\rx", "'x"])
def test_cells_that_would_start_a_formula_are_neutralised(text):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("value", ["1+1", "a=b", "", 5, None, "ünïcode"])
def test_other_cells_are_left_alone(value):
    assert neutralise(value) == value


def test_csv_is_rfc4180_and_neutralises_formula_injection(tricky_events):
    text = _export("csv")
    assert text.count("\r\n") == len(tricky_events) + 1  # CRLF line ends, one header
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    tricky = rows[-1]
    assert tricky["patient_id"] == '\'=HYPERLINK("http://evil","x")'
    assert tricky["accession"] == "'+1-555"
    assert tricky["study_uid"] == "'@SUM(A1)"
    assert tricky["outcome_reason"] == '\'-2+3, "quoted" ]bracket\\'
    assert tricky["model_version"] == "''already quoted"
    assert tricky["event_meaning"] == "Query"
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())


def test_csv_holds_every_hashed_field_and_re_verifies(tricky_events):
    records = []
    for row in csv.DictReader(io.StringIO(_export("csv"), newline="")):
        record = {name: (value[1:] if value.startswith("'") else value) for name, value in row.items()}
        for name in INTEGER_FIELDS:
            record[name] = None if name in NULLABLE_FIELDS and record[name] == "" else int(record[name])
        record["detail"] = json.loads(record["detail"])
        records.append(record)
    assert set(CHAINED_FIELDS) <= set(records[0])
    _assert_reverifies(records)


# --- JSON Lines ---------------------------------------------------------------------------
def test_jsonl_is_one_object_per_line_and_re_verifies(tricky_events):
    lines = _export("jsonl").splitlines()
    assert len(lines) == len(tricky_events)
    records = [json.loads(line) for line in lines]
    assert records[-1]["detail"] == {"n": 1, "query": "name=Ünal,*"}
    assert records[-1]["patient_id"] == '=HYPERLINK("http://evil","x")'  # JSON needs no neutralising
    _assert_reverifies(records)


# --- FHIR ---------------------------------------------------------------------------------
def test_fhir_export_is_a_valid_r4_bundle_of_audit_events(tricky_events, rita, client):
    # A sign-in last: user id, role, address and session on the agent.
    client.post(reverse("login"), {"username": "rita", "password": PASSWORD})
    text = _export("fhir")
    document = json.loads(text)
    assert (document["resourceType"], document["type"]) == ("Bundle", "collection")
    assert len(document["entry"]) == AuditEvent.objects.count()
    for entry in document["entry"]:
        FhirAuditEvent.model_validate(entry["resource"])
    bundle = Bundle.model_validate_json(text)
    assert bundle.type == "collection"
    login = document["entry"][-1]["resource"]
    assert login["type"]["code"] == EventID.USER_AUTHENTICATION.code
    assert login["subtype"][0]["code"] == "110122"
    assert login["agent"][0]["who"]["identifier"]["value"] == str(rita.pk)
    assert login["agent"][0]["network"] == {"address": "127.0.0.1", "type": "2"}


def test_an_empty_fhir_export_is_still_a_valid_bundle(db):
    text = _export("fhir", AuditFilter(username="nobody"))
    assert "entry" not in json.loads(text)
    Bundle.model_validate_json(text)


def test_fhir_entries_carry_every_hashed_field_and_re_verify(tricky_events):
    records = []
    for entry in json.loads(_export("fhir"))["entry"]:
        record_entity = entry["resource"]["entity"][-1]
        fields = {detail["type"]: detail["valueString"] for detail in record_entity["detail"]}
        record = {name: fields.get(name, "") for name in (*CHAINED_FIELDS, "hash")}
        for name in INTEGER_FIELDS:
            record[name] = int(record[name]) if record[name] != "" else None
        record["detail"] = json.loads(record["detail"])
        records.append(record)
    _assert_reverifies(records)


# --- Syslog -------------------------------------------------------------------------------
def test_syslog_lines_match_the_rfc5424_abnf(tricky_events):
    lines = _export("syslog").splitlines()
    assert len(lines) == len(tricky_events)
    for line in lines:
        assert RFC5424.fullmatch(line), line
    assert lines[0].startswith("<110>1 ")  # facility 13 (log audit), severity 6 (informational)
    assert ' outcome_reason="-2+3, \\"quoted\\" \\]bracket\\\\"' in lines[-1]


def test_the_abnf_pattern_rejects_malformed_lines():
    good = '<110>1 2026-11-23T10:11:55.000123Z host overread - 110114 [overread@32473 id="1"] \ufeffLogin'
    assert RFC5424.fullmatch(good)
    for bad in (
        good.replace("<110>", "<192>"),
        good.replace('id="1"', 'id="a"b"'),
        good.replace('id="1"', 'id="a]"'),
        good.replace("2026-11-23T", "2026-11-23 "),
        good.replace(" - 110114", "  110114"),
    ):
        assert not RFC5424.fullmatch(bad), bad


def test_syslog_structured_data_re_verifies(tricky_events):
    param = re.compile(r'([!#-<>-\\^-~]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"')
    records = []
    for line in _export("syslog").splitlines():
        sd = RFC5424.fullmatch(line).group("sd")
        fields = {name: re.sub(r'\\(["\\\]])', r"\1", value) for name, value in param.findall(sd)}
        record = {name: fields.get(name) for name in (*CHAINED_FIELDS, "hash")}
        for name in INTEGER_FIELDS:
            record[name] = None if record[name] is None else int(record[name])
        record["detail"] = json.loads(record["detail"])
        records.append(record)
    _assert_reverifies(records)


# --- Filters and the command ----------------------------------------------------------------
def test_exports_follow_the_filter(make_events):
    make_events(2, patient_id="PAT-A")
    make_events(3, patient_id="PAT-B")
    lines = _export("jsonl", AuditFilter(patient_id="PAT-B")).splitlines()
    assert [json.loads(line)["patient_id"] for line in lines] == ["PAT-B"] * 3


def test_the_export_command_writes_the_file_and_is_itself_audited(make_events, tmp_path):
    make_events(4)
    target = tmp_path / "audit.jsonl"
    call_command("export_audit", "--format", "jsonl", "--patient", "PAT-1", "-o", str(target))
    lines = target.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    export, used = AuditEvent.objects.order_by("-id")[:2][::-1]
    assert (export.event_id, used.event_id) == (EventID.EXPORT.code, EventID.AUDIT_LOG_USED.code)
    assert export.username.startswith("os:")
    assert export.detail_data == {"format": "jsonl", "filters": {"patient_id": "PAT-1"}, "up_to_id": 4}


@pytest.mark.parametrize("export_format", sorted(FORMATS))
def test_the_export_command_writes_every_format(make_events, tmp_path, export_format):
    make_events(2)
    target = tmp_path / f"audit.{export_format}"
    call_command("export_audit", "--format", export_format, "--since", "2000-01-01", "-o", str(target))
    assert target.stat().st_size > 0


def test_the_export_command_refuses_an_unknown_format(db, tmp_path):
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("export_audit", "--format", "xml", "-o", str(tmp_path / "x"))
