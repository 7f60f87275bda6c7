"""The upload page: its JSON endpoint over HTTP, the form without JavaScript, and one real browser run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.factories import PASSWORD
from tests.viewer.conftest import ct_dataset, dicom_file, part10, write, zip_bomb, zip_of
from viewer.models import Instance

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "test" / "screenshots"


def upload(client: Client, name: str, content: bytes, **extra: Any) -> Any:
    return client.post("/upload/files", {"file": SimpleUploadedFile(name, content)}, **extra)


@pytest.fixture
def rita_client(client: Client, rita: Any) -> Client:
    client.force_login(rita)
    return client


@pytest.mark.django_db
class TestTheJsonEndpoint:
    def test_a_dicom_file_is_stored_then_reported_as_already_stored(self, rita_client, empty_store):
        data = dicom_file("CT_small.dcm").read_bytes()

        first = upload(rita_client, "CT_small.dcm", data)
        second = upload(rita_client, "CT_small.dcm", data)

        assert first.status_code == 200
        [result] = first.json()["results"]
        assert (result["name"], result["status"], result["reason"]) == ("CT_small.dcm", "stored", "stored")
        assert result["sop_instance_uid"] == Instance.objects.get().sop_instance_uid
        assert second.status_code == 200
        assert second.json()["results"][0]["status"] == "duplicate"
        assert second.json()["summary"] == {"duplicate": 1}

    def test_a_refused_file_is_answered_with_its_reason(self, rita_client, nothing_added):
        response = upload(rita_client, "MR_truncated.dcm", dicom_file("MR_truncated.dcm").read_bytes())

        assert response.status_code == 422  # nothing stored, as STOW-RS answers 409
        assert response.json()["detail"].startswith("nothing was stored: the file is truncated")
        [result] = response.json()["results"]
        assert result["status"] == "rejected"
        assert result["reason"].startswith("the file is truncated")
        assert result["failure_code"] == "0xC000"
        nothing_added()

    def test_a_zip_gives_a_result_per_entry(self, rita_client, empty_store):
        archive = zip_of([("a/IM1.dcm", part10(ct_dataset())), ("a/notes.txt", b"hello")])

        response = upload(rita_client, "study.zip", archive)

        assert response.status_code == 200
        assert [(r["name"], r["status"]) for r in response.json()["results"]] == [
            ("study.zip/a/IM1.dcm", "stored"),
            ("study.zip/a/notes.txt", "rejected"),
        ]

    def test_a_zip_bomb_is_refused_and_the_next_upload_works(self, rita_client, empty_store):
        refused = upload(rita_client, "bomb.zip", zip_bomb())
        following = upload(rita_client, "ok.dcm", part10(ct_dataset()))

        assert refused.status_code == 422
        assert refused.json()["results"][0]["status"] == "rejected"
        assert "ZIP bomb" in refused.json()["results"][0]["reason"]
        assert following.status_code == 200
        assert Instance.objects.count() == 1

    def test_a_request_without_a_file_is_400(self, rita_client):
        assert rita_client.post("/upload/files", {}).status_code == 400

    def test_a_request_over_the_limit_is_413_before_it_is_read(self, rita_client, settings, nothing_added):
        settings.DICOM_MAX_UPLOAD_BYTES = 1024

        response = upload(rita_client, "big.dcm", bytes(200 * 1024))

        assert response.status_code == 413
        assert "larger than the limit of 1024 bytes" in response.json()["detail"]
        nothing_added()

    def test_it_needs_the_csrf_token_of_the_session(self, rita, empty_store):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(rita)
        token = browser.get("/upload/").cookies["csrftoken"].value

        assert upload(browser, "ok.dcm", part10(ct_dataset())).status_code == 403
        assert upload(browser, "ok.dcm", part10(ct_dataset()), HTTP_X_CSRFTOKEN=token).status_code == 200

    def test_an_annotator_may_not_upload(self, client, anna, nothing_added):
        client.force_login(anna)

        assert client.get("/upload/").status_code == 403
        assert upload(client, "ok.dcm", part10(ct_dataset())).status_code == 403
        nothing_added()

    def test_a_signed_out_visitor_is_sent_to_sign_in(self, client):
        response = client.get("/upload/")

        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_the_page_offers_files_folders_and_zips(rita_client):
    response = rita_client.get("/upload/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-upload-endpoint="/upload/files"' in page
    assert "webkitdirectory" in page
    assert 'enctype="multipart/form-data"' in page
    assert "<script>" not in page  # the CSP allows neither inline scripts...
    assert "style=" not in page  # ...nor inline styles


@pytest.mark.django_db
def test_without_javascript_the_form_posts_files_and_shows_their_results(rita_client, empty_store):
    files = [
        SimpleUploadedFile("CT_small.dcm", dicom_file("CT_small.dcm").read_bytes()),
        SimpleUploadedFile("notes.txt", b"not an image"),
    ]

    response = rita_client.post("/upload/", {"files": files})

    assert response.status_code == 200
    page = response.content.decode()
    assert "1 stored, 1 rejected" in page
    assert 'data-status="stored"' in page
    assert 'data-status="rejected"' in page
    assert "neither a DICOM Part 10 file" in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_radiologist_uploads_files_and_a_zip_in_the_browser(
    page, browser_errors, rita, empty_store, tmp_path
):
    chosen = [
        write(tmp_path, "CT_small.dcm", dicom_file("CT_small.dcm").read_bytes()),
        write(tmp_path, "MR_truncated.dcm", dicom_file("MR_truncated.dcm").read_bytes()),
        write(
            tmp_path,
            "series.zip",
            zip_of([("s/IM1.dcm", part10(ct_dataset())), ("s/IM2.dcm", part10(ct_dataset()))]),
        ),
        write(tmp_path, "notes.txt", b"not an image"),
    ]
    page.goto("/login/?next=/upload/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/upload/")

    page.locator("[data-upload-files]").set_input_files([str(path) for path in chosen])
    page.wait_for_selector("[data-upload][data-upload-state=done]", timeout=30_000)

    rows = page.locator("tr.upload-result")
    assert [rows.nth(i).get_attribute("data-status") for i in range(rows.count())] == [
        "stored",  # CT_small.dcm
        "rejected",  # MR_truncated.dcm
        "stored",  # series.zip, summed up...
        "stored",  # ...and each entry on its own row
        "stored",
        "rejected",  # notes.txt
    ]
    truncated = page.locator("tr.upload-result", has_text="MR_truncated.dcm")
    assert "the file is truncated" in truncated.locator("td.reason").inner_text()
    assert page.get_by_test_id("upload-summary").inner_text() == "3 stored, 2 rejected"
    assert Instance.objects.count() == 3
    # The two refused files were answered 422, which the console reports; nothing else is there
    # (no script error, no CSP violation).
    refusals = [error for error in browser_errors if "status of 422" in error]
    assert len(refusals) == 2, browser_errors
    assert [error for error in browser_errors if error not in refusals] == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "upload.png", full_page=True)
