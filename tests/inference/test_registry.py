"""The model registry: register_model checks a model before it is kept; run_inference asks for jobs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from inference.engine.network import DemoUNet
from inference.models import InferenceJob, ModelVersion
from inference.registry import DEMO_MANIFEST
from tests.inference.helpers import ingest, small_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def card(tmp_path):
    path = tmp_path / "card.json"
    path.write_text(json.dumps({"intended_use": "tests", "known_limits": ["none"], "evaluation": {}}))
    return path


def test_the_demo_manifest_registers_with_its_card(capsys):
    call_command("register_model", manifest=DEMO_MANIFEST, status="active")
    model = ModelVersion.objects.get()
    shipped = json.loads(DEMO_MANIFEST.read_text())["version"]
    assert (model.name, model.version, model.status, model.demonstration) == (
        "overread-demo-lesion",
        shipped,
        "active",
        True,
    )
    card = model.model_card
    assert "not for clinical use" in json.dumps(card).lower()
    assert {"dice", "auc"} <= {
        key.lower() for key in json.dumps(card["evaluation"]).replace('"', " ").split()
    } or card["evaluation"]
    assert model.input_spec["modality"] == "CT"
    assert f"registered overread-demo-lesion {shipped}" in capsys.readouterr().out
    assert AuditEvent.objects.filter(model_version=f"overread-demo-lesion {shipped}", action="C").exists()


def test_a_version_is_registered_once():
    call_command("register_model", manifest=DEMO_MANIFEST)
    with pytest.raises(CommandError, match="already registered"):
        call_command("register_model", manifest=DEMO_MANIFEST)


def test_weights_that_are_not_the_manifests_are_refused(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(DEMO_MANIFEST.parent, folder)
    manifest = json.loads((folder / "model.json").read_text())
    weights = folder / manifest["weights"]
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(CommandError, match="is not the file the manifest describes"):
        call_command("register_model", manifest=folder / "model.json")
    assert not ModelVersion.objects.exists()


def test_a_torchscript_model_registers_and_a_broken_one_is_refused(tmp_path, card):
    scripted = torch.jit.script(DemoUNet())
    path = tmp_path / "net.pt"
    scripted.save(str(path))
    call_command(
        "register_model",
        name="scripted",
        model_version="0.1.0",
        weights=path,
        format="torchscript",
        card=card,
    )
    assert ModelVersion.objects.get(name="scripted").format == "torchscript"

    path.write_bytes(b"not a model")
    with pytest.raises(CommandError, match="does not load and run"):
        call_command(
            "register_model",
            name="broken",
            model_version="0.1.0",
            weights=path,
            format="torchscript",
            card=card,
        )


def test_a_network_with_the_wrong_outputs_is_refused(tmp_path, card):
    path = tmp_path / "net.pt"
    torch.jit.script(torch.nn.Conv2d(1, 1, 3, padding=1)).save(str(path))
    with pytest.raises(CommandError, match="segmentation logits, slice logit"):
        call_command(
            "register_model",
            name="conv",
            model_version="0.1.0",
            weights=path,
            format="torchscript",
            card=card,
        )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"name": "x"}, "--model-version"),
        ({"name": "Bad Name", "model_version": "1.0.0", "format": "state_dict"}, "name"),
        ({"name": "x", "model_version": "one", "format": "state_dict"}, "semantic version"),
        ({"name": "x", "model_version": "1.0.0", "format": "state_dict", "entry_point": ""}, "entry point"),
        (
            {"name": "x", "model_version": "1.0.0", "format": "state_dict", "card": None},
            "model card is required",
        ),
    ],
)
def test_bad_registrations_say_what_is_wrong(flags, message, card):
    sd = DEMO_MANIFEST.parent / json.loads(DEMO_MANIFEST.read_text())["weights"]
    flags = {"weights": sd, "card": card, **flags} if "model_version" in flags else flags
    with pytest.raises(CommandError, match=message):
        call_command("register_model", **flags)
    assert not ModelVersion.objects.exists()


def test_run_inference_queues_a_job_and_says_so(capsys):
    call_command("register_model", manifest=DEMO_MANIFEST, status="active")
    study = small_study()
    ingest(study.datasets)
    call_command("run_inference", study=study.study_uid, model="overread-demo-lesion")
    job = InferenceJob.objects.get()
    assert job.trigger == "manual"
    assert f"queued job {job.pk}" in capsys.readouterr().out


def test_run_inference_explains_when_nothing_matches():
    call_command("register_model", manifest=DEMO_MANIFEST, status="active")
    with pytest.raises(CommandError, match=r"no study 1\.2\.3"):
        call_command("run_inference", study="1.2.3")
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("MR_small.dcm"))
    ingest([ds])
    with pytest.raises(CommandError, match="modality MR"):
        call_command("run_inference", study=ds.StudyInstanceUID, model="overread-demo-lesion")
