"""train_demo_model at a tiny size: reproducible bit for bit, and a complete manifest."""

from __future__ import annotations

import platform

import torch

from inference.engine.loading import clear_cache, load_network
from inference.engine.manifest import read_manifest
from inference.engine.network import DemoUNet
from inference.engine.training import DEMO_SPEC, DISCLAIMER, TrainingConfig, train_demo_model

TINY = TrainingConfig(
    batch_size=4,
    patch=64,
    train_studies=3,
    train_matrices=(64, 80),
    train_slices=12,
    held_out_studies=2,
    held_out_shape=(20, 64, 64),
    large_studies=0,
    base=4,
    depth=2,
)


def test_training_twice_with_one_seed_gives_identical_weights(tmp_path):
    lines: list[str] = []
    first = train_demo_model(seed=7, out_dir=tmp_path / "a", steps=3, config=TINY, progress=lines.append)
    second = train_demo_model(seed=7, out_dir=tmp_path / "b", steps=3, config=TINY)
    other = train_demo_model(seed=8, out_dir=tmp_path / "c", steps=3, config=TINY)

    assert first["sha256"] == second["sha256"] != other["sha256"]
    weights_a = torch.load(tmp_path / "a" / "demo_unet.pt", weights_only=True)
    weights_b = torch.load(tmp_path / "b" / "demo_unet.pt", weights_only=True)
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    assert any("step 3/3" in line for line in lines)


def test_the_manifest_describes_the_model_and_loads(tmp_path):
    train_demo_model(seed=1, out_dir=tmp_path, steps=2, config=TINY)

    manifest = read_manifest(tmp_path)
    card = manifest.data["model_card"]
    assert manifest.spec.name == "overread-demo-lesion"
    assert manifest.spec.version == DEMO_SPEC.version
    assert manifest.data["task"] == "segmentation+classification"
    assert card["demonstration"] is True
    assert card["statement"] == DISCLAIMER
    assert set(card["evaluation"]) >= {"mean_dice", "auc", "sensitivity", "specificity"}
    assert card["evaluation_512"] is None
    assert card["training"]["reproduce"].startswith("python manage.py train_demo_model --seed 1")
    # Bit-for-bit reproduction holds on one kind of processor: the card says which.
    machine = card["training"]["machine"]
    assert f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}" in machine
    assert f"{TINY.threads} CPU threads" in machine
    assert set(manifest.triage) == {"urgent", "priority"}
    clear_cache()
    try:
        network = load_network(manifest.source, "cpu")
    finally:
        clear_cache()
    assert not network.training
    assert isinstance(network, DemoUNet)
    assert network.size_multiple == TINY.stem * 2**TINY.depth  # the manifest's architecture was built
