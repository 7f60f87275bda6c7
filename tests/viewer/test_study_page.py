"""The study page (the reading viewer's HTML): who may open it, what it tells the script, the audit."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.viewer.dicomweb_helpers import index_file, make_ct_series

pytestmark = pytest.mark.django_db

ACCESSED = "110103"


@pytest.fixture
def ct(empty_store):
    return [index_file(data) for data in make_ct_series(3)]


def _page(instance) -> str:
    return f"/studies/{instance.series.study.study_uid}/"


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_sends_a_visitor_to_the_login_page(ct, client):
    response = client.get(_page(ct[0]))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_user_without_the_permission_gets_404_like_for_an_unknown_study(ct):
    nobody = _signed_in(UserFactory(username="nobody"))
    assert nobody.get(_page(ct[0])).status_code == 404
    assert nobody.get("/studies/1.2.3.4/").status_code == 404
    assert not AuditEvent.objects.filter(event_id=ACCESSED).exists()


def test_a_malformed_uid_is_404(ct, rita):
    assert _signed_in(rita).get("/studies/not-a-uid/").status_code == 404


def test_it_configures_the_viewer_through_data_attributes(ct, rita):
    response = _signed_in(rita).get(_page(ct[0]))
    assert response.status_code == 200
    html = response.content.decode()
    study = ct[0].series.study
    assert f'data-study-uid="{study.study_uid}"' in html
    assert 'data-dicomweb-root="/dicomweb"' in html
    assert 'data-worker-url="/static/dist/decodeImageFrameWorker.js"' in html
    assert 'data-wasm-url="/static/dist/wasm/openjpegwasm_decode.wasm"' in html
    assert f'data-ai-url="/api/v1/studies/{study.study_uid}/ai/"' in html
    assert f'data-series-uid="{ct[0].series.series_uid}"' in html
    assert '<aside id="side-panel"' in html
    assert "dist/viewer.js" in html


def test_it_hands_the_tag_inspector_the_keywords_of_the_tags_present(ct, rita):
    response = _signed_in(rita).get(_page(ct[0]))
    html = response.content.decode()
    script = html.split('<script id="dicom-keywords" type="application/json">', 1)[1].split("</script>", 1)[0]
    keywords = json.loads(script)
    assert keywords["00100020"] == "PatientID"
    assert keywords["00280010"] == "Rows"


def test_opening_a_study_is_audited_once_per_session_with_its_frames(ct, rita):
    client = _signed_in(rita)
    client.get(_page(ct[0]))
    client.get(_page(ct[0]))
    study, series = ct[0].series.study.study_uid, ct[0].series.series_uid
    client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{ct[0].sop_instance_uid}/frames/1")
    event = AuditEvent.objects.get(event_id=ACCESSED)
    assert (event.study_uid, event.username) == (study, "rita")
