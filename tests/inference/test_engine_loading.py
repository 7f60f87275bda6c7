"""load_network and manifests: sha256 checked before loading, one load per process and device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.engine.loading import NetworkSource, WeightsError, clear_cache, file_sha256, load_network
from inference.engine.manifest import read_manifest, write_manifest
from inference.engine.network import DemoUNet
from inference.engine.pipeline import run
from inference.engine.types import Geometry, ModelSpec, Volume

ENTRY_POINT = "inference.engine.network:DemoUNet"
KWARGS = {"base": 4, "depth": 2}

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def network() -> DemoUNet:
    torch.manual_seed(0)
    return DemoUNet(**KWARGS).eval()


@pytest.fixture
def state_dict_source(tmp_path: Path, network: DemoUNet) -> NetworkSource:
    path = tmp_path / "net.pt"
    torch.save(network.state_dict(), path)
    return NetworkSource(path, file_sha256(path), "state_dict", ENTRY_POINT, dict(KWARGS))


@pytest.fixture
def torchscript_source(tmp_path: Path, network: DemoUNet) -> NetworkSource:
    path = tmp_path / "net.ts"
    torch.jit.script(network).save(str(path))
    return NetworkSource(path, file_sha256(path), "torchscript")


def _volume() -> Volume:
    hu = np.random.default_rng(0).normal(0, 300, (5, 30, 34)).astype(np.float32)
    geometry = Geometry((2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0), tuple("abcde"))
    return Volume(hu=hu, geometry=geometry)


def test_it_loads_a_state_dict_in_eval_mode_channels_last_without_gradients(state_dict_source, network):
    loaded = load_network(state_dict_source, "cpu")

    assert isinstance(loaded, DemoUNet)
    assert not loaded.training
    assert not any(parameter.requires_grad for parameter in loaded.parameters())
    first_conv = loaded.encoders[0][0].weight
    assert first_conv.is_contiguous(memory_format=torch.channels_last)
    for name, value in network.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)


def test_it_refuses_weights_whose_sha256_differs(state_dict_source):
    wrong = NetworkSource(state_dict_source.weights, "0" * 64, "state_dict", ENTRY_POINT, dict(KWARGS))

    with pytest.raises(WeightsError, match=f"has sha256 {state_dict_source.sha256}, but the manifest"):
        load_network(wrong, "cpu")


def test_it_refuses_missing_weights(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_network(NetworkSource(tmp_path / "nothing.pt", "0" * 64), "cpu")


def test_it_refuses_weights_that_do_not_fit_the_entry_point(state_dict_source):
    other = NetworkSource(state_dict_source.weights, state_dict_source.sha256, "state_dict", ENTRY_POINT, {})

    with pytest.raises(WeightsError, match="does not fit"):
        load_network(other, "cpu")


def test_it_loads_a_network_once_per_process_and_device(state_dict_source):
    first = load_network(state_dict_source, "cpu")

    assert load_network(state_dict_source, torch.device("cpu")) is first
    clear_cache()
    assert load_network(state_dict_source, "cpu") is not first


def test_torchscript_and_state_dict_networks_give_the_same_answer(state_dict_source, torchscript_source):
    spec = ModelSpec(name="t", version="1", threshold=0.5, saliency_layer="bottleneck")
    eager = load_network(state_dict_source, "cpu")
    scripted = load_network(torchscript_source, "cpu")
    assert isinstance(scripted, torch.jit.ScriptModule)
    assert not any(parameter.requires_grad for parameter in scripted.parameters())

    from_eager = run(eager, _volume(), spec, device="cpu", saliency_top_k=1)
    from_script = run(scripted, _volume(), spec, device="cpu", saliency_top_k=1)

    assert np.allclose(from_eager.probability, from_script.probability, atol=1e-5)
    assert np.allclose(from_eager.slice_scores, from_script.slice_scores, atol=1e-5)
    for result in (from_eager, from_script):
        assert result.heatmap.max() == pytest.approx(1.0)


def test_a_manifest_round_trips_to_a_spec_and_source(tmp_path, state_dict_source):
    data = {
        "name": "m",
        "version": "2.0.0",
        "format": "state_dict",
        "weights": state_dict_source.weights.name,
        "sha256": state_dict_source.sha256,
        "entry_point": ENTRY_POINT,
        "entry_kwargs": KWARGS,
        "input_spec": {"modality": "CT", "min_slices": 4, "matrix": [64, 512]},
        "labels": ["lesion"],
        "threshold": 0.4,
        "min_finding_mm3": 12.0,
        "hu_window": [-1200, 400],
        "study_threshold": 0.6,
        "triage": {"urgent": 0.9, "priority": 0.6},
        "saliency_layer": "bottleneck",
    }
    write_manifest(state_dict_source.weights.parent, data)

    manifest = read_manifest(state_dict_source.weights.parent)

    assert manifest.spec.threshold == 0.4
    assert manifest.spec.min_finding_mm3 == 12.0
    assert manifest.spec.hu_window == (-1200.0, 400.0)
    assert manifest.spec.input.matrix == (64, 512)
    assert manifest.spec.input.min_slices == 4
    assert manifest.source == state_dict_source
    assert manifest.triage == {"urgent": 0.9, "priority": 0.6}
    del data["sha256"]
    write_manifest(tmp_path, data)
    with pytest.raises(ValueError, match="lacks 'sha256'"):
        read_manifest(tmp_path / "model.json")
