"""run: the stages, their outputs and timings, progress and cancelling, saliency, devices.

Most tests use a stand-in network whose answer is known (every voxel at or above 500 HU is
lesion), so they check the pipeline rather than a trained model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from inference.engine.flops import conv_flops
from inference.engine.network import DemoUNet
from inference.engine.pipeline import run
from inference.engine.saliency import finding_slice_step
from inference.engine.types import Geometry, ModelSpec, Volume

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
SPEC = ModelSpec(name="bright", version="1", threshold=0.5, batch_size=3, saliency_layer="features")


class BrightSpots(nn.Module):
    """Segmentation logit 40 * (x - 0.5): positive from 500 HU up (window -1000..1000)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.features.weight.fill_(40.0)
            self.features.bias.fill_(-20.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.features(x)
        return logits, torch.amax(logits, dim=(2, 3))


def _volume() -> Volume:
    """Air and soft tissue with two bright boxes; 37 x 45 so the runner must pad."""
    hu = np.full((12, 37, 45), -1000.0, dtype=np.float32)
    hu[:, 5:30, 5:40] = 40.0
    hu[3:6, 10:16, 12:20] = 800.0  # 3 x 6 x 8
    hu[8:10, 20:24, 30:33] = 900.0  # 2 x 4 x 3
    geometry = Geometry(
        spacing=(2.0, 0.5, 0.5),
        origin=(0.0, 0.0, 0.0),
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        sop_instance_uids=tuple(str(k) for k in range(12)),
    )
    return Volume(hu=hu, geometry=geometry)


def _truth() -> np.ndarray:
    return _volume().hu >= 500


def test_it_finds_what_the_network_segments_and_scores_the_slices():
    result = run(BrightSpots().eval(), _volume(), SPEC, device="cpu")

    assert result.probability.dtype == np.float32
    assert result.probability.shape == (12, 37, 45)
    assert np.array_equal(result.mask > 0, _truth())
    assert [f.bbox for f in result.findings] == [((3, 6), (10, 16), (12, 20)), ((8, 10), (20, 24), (30, 33))]
    assert [f.voxel_count for f in result.findings] == [144, 24]
    assert result.findings[0].volume_mm3 == pytest.approx(144 * 0.5)
    assert result.slice_scores.dtype == np.float32
    assert result.slice_scores.shape == (12,)
    lesion_slices = _truth().any(axis=(1, 2))
    assert result.slice_scores[lesion_slices].min() > 0.99
    assert result.slice_scores[~lesion_slices].max() < 0.01
    assert result.study_score == pytest.approx(float(result.slice_scores.max()))
    assert set(result.timings) == {"preprocess", "forward", "postprocess", "saliency"}
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert result.device == "cpu"


def test_it_leaves_the_volume_it_reads_as_it_was():
    volume = _volume()
    before = volume.hu.copy()

    run(BrightSpots().eval(), volume, SPEC, device="cpu", saliency=False)

    assert np.array_equal(volume.hu, before)


def test_its_heatmaps_lie_on_the_findings():
    result = run(BrightSpots().eval(), _volume(), SPEC, device="cpu", saliency_top_k=2)

    heatmap = result.heatmap
    assert heatmap.dtype == np.float32
    assert heatmap.shape == (12, 37, 45)
    assert heatmap.min() >= 0
    assert heatmap.max() == pytest.approx(1.0)
    assert heatmap[_truth()].sum() / heatmap.sum() > 0.9
    explained = {3, 4, 5, 8, 9}  # the findings' slices (also the top two by score)
    assert not heatmap[[z for z in range(12) if z not in explained]].any()
    assert result.heatmap_slices == sorted(explained)  # what the Parametric Map gets frames for
    for finding in result.findings:
        (z0, z1), (y0, y1), (x0, x1) = finding.bbox
        local = result.finding_heatmaps[finding.index]
        assert local.dtype == np.float32
        assert local.shape == (z1 - z0, y1 - y0, x1 - x0)
        assert local.min() >= 0
        assert local.max() == pytest.approx(1.0)


def test_it_explains_findings_within_a_budget_of_slices_most_probable_first():
    result = run(
        BrightSpots().eval(), _volume(), SPEC, device="cpu", saliency_top_k=0, saliency_max_finding_slices=3
    )

    # Finding 2 (900 HU) is the more probable; finding 1's three slices would exceed the budget.
    assert result.findings[1].max_probability > result.findings[0].max_probability
    assert set(result.finding_heatmaps) == {2}
    assert result.heatmap[8:10].any()
    assert not result.heatmap[3:6].any()
    assert result.heatmap_slices == [8, 9]


def test_slices_about_5_mm_apart_are_explained_and_the_ones_between_interpolated():
    assert [finding_slice_step(mm) for mm in (0.625, 1.25, 2.0, 2.5, 5.0, None)] == [8, 4, 2, 2, 1, 1]

    result = run(BrightSpots().eval(), _volume(), SPEC, device="cpu", saliency_top_k=0)  # 2 mm: every other

    [three_slices] = [f for f in result.findings if f.bbox[0] == (3, 6)]
    local = result.finding_heatmaps[three_slices.index]
    assert local[0].any()
    assert local[2].any()  # the first and last slices are explained...
    assert np.allclose(local[1], (local[0] + local[2]) / 2)  # ...the middle one lies between them
    assert np.allclose(result.heatmap[4], (result.heatmap[3] + result.heatmap[5]) / 2)
    assert result.heatmap[4].any()


def test_a_cpu_takes_one_slice_per_pass_and_a_gpu_the_models_batch():
    spec = ModelSpec(name="m", version="1", batch_size=8)

    assert spec.slices_per_pass("cpu") == 1
    assert spec.slices_per_pass("cuda") == 8


def test_a_torchscript_network_gets_smoothed_input_gradients():
    eager = BrightSpots().eval()
    scripted = torch.jit.script(eager)

    result = run(scripted, _volume(), SPEC, device="cpu", saliency_top_k=0)
    expected = run(eager, _volume(), SPEC, device="cpu", saliency=False)

    assert np.allclose(result.probability, expected.probability, atol=1e-6)
    assert result.heatmap.min() >= 0
    assert result.heatmap.max() == pytest.approx(1.0)
    near = np.zeros_like(_truth())
    near[3:6, 6:20, 8:24] = near[8:10, 16:28, 26:37] = True  # the boxes and 4 voxels around
    assert result.heatmap[near].sum() / result.heatmap.sum() > 0.8
    assert set(result.finding_heatmaps) == {1, 2}


def test_it_skips_saliency_when_asked():
    result = run(BrightSpots().eval(), _volume(), SPEC, device="cpu", saliency=False)

    assert not result.heatmap.any()
    assert result.finding_heatmaps == {}
    assert result.heatmap_slices == []
    assert result.timings["saliency"] == 0.0


class Cancelled(Exception):
    pass


def test_it_reports_progress_by_stage_and_stops_when_progress_raises():
    calls: list[tuple[str, float]] = []
    run(BrightSpots().eval(), _volume(), SPEC, device="cpu", progress=lambda s, f: calls.append((s, f)))

    stages = [stage for stage, _ in calls]
    order = ["preprocess", "forward", "postprocess", "saliency"]
    assert sorted(set(stages)) == sorted(order)
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
    assert calls[-1] == ("saliency", 1.0)
    forward = [f for s, f in calls if s == "forward"]
    assert forward == [0.0, *(k / 12 for k in range(1, 13))]  # 12 slices, one a pass on a CPU

    seen: list[tuple[str, float]] = []

    def cancel(stage: str, fraction: float) -> None:
        seen.append((stage, fraction))
        if stage == "forward" and fraction >= 0.5:
            raise Cancelled

    with pytest.raises(Cancelled):
        run(BrightSpots().eval(), _volume(), SPEC, device="cpu", progress=cancel)
    assert seen[-1] == ("forward", 0.5)  # nothing ran after the cancel


# The first demonstration model's plain U-Net, and the shipped one's (2x2 cells in and out,
# skips joined by addition).
ARCHITECTURES = [{"depth": 3}, {"depth": 2, "stem": 2, "skips": "add"}]


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=["plain", "cells"])
def test_the_demo_network_keeps_the_two_output_contract_at_any_size(architecture):
    network = DemoUNet(base=4, **architecture).eval()

    with torch.inference_mode():
        logits, slice_logit = network(torch.zeros(2, 1, 40, 56))

    assert logits.shape == (2, 1, 40, 56)
    assert slice_logit.shape == (2, 1)
    volume = Volume(hu=np.zeros((3, 37, 45), np.float32), geometry=_volume().geometry)
    result = run(network, volume, ModelSpec(name="d", version="1", saliency_layer="bottleneck"), device="cpu")
    assert result.probability.shape == (3, 37, 45)


def test_a_target_that_does_not_use_its_saliency_layer_falls_back_to_input_gradients():
    torch.manual_seed(0)
    network = DemoUNet(base=4, depth=3).eval()
    volume = _volume()
    decoder_only = ModelSpec(name="d", version="1", threshold=0.0, saliency_layer="decoders.1")
    both = ModelSpec(
        name="d", version="1", threshold=0.0, saliency_layer="decoders.1", study_saliency_layer="bottleneck"
    )

    fallback = run(network, volume, decoder_only, device="cpu", saliency_top_k=2)
    grad_cam = run(network, volume, both, device="cpu", saliency_top_k=2)

    # The slice head reads the bottleneck, not decoders.1: input gradients explain the study.
    assert fallback.heatmap.max() == pytest.approx(1.0)
    assert grad_cam.heatmap.max() == pytest.approx(1.0)
    assert not np.allclose(fallback.heatmap, grad_cam.heatmap)
    assert np.allclose(fallback.finding_heatmaps[1], grad_cam.finding_heatmaps[1])


def test_it_counts_convolution_flops():
    network = DemoUNet(base=4, depth=2).eval()
    expected = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal expected
        assert isinstance(module, nn.Conv2d | nn.ConvTranspose2d)
        kernel = module.kernel_size[0] * module.kernel_size[1]
        pixels = (inputs[0] if isinstance(module, nn.ConvTranspose2d) else output).shape[-2:].numel()
        expected += 2 * module.in_channels * module.out_channels * kernel * pixels * output.shape[0]

    for module in network.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(count)
    with torch.inference_mode():
        network(torch.zeros(3, 1, 32, 48))
    for module in network.modules():
        module._forward_hooks.clear()

    assert conv_flops(network, (3, 1, 32, 48)) == expected
    assert conv_flops(torch.jit.script(network), (3, 1, 32, 48)) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_it_runs_on_cuda():
    on_cpu = run(BrightSpots().eval(), _volume(), SPEC, device="cpu")

    result = run(BrightSpots().eval(), _volume(), SPEC)  # CUDA is the default when present

    assert result.device.startswith("cuda")
    assert np.allclose(result.probability, on_cpu.probability, atol=1e-5)
    assert np.array_equal(result.mask, on_cpu.mask)
    assert result.heatmap.max() == pytest.approx(1.0)
    demo = run(
        DemoUNet(base=8).eval(), _volume(), ModelSpec(name="d", version="1", saliency_layer="bottleneck")
    )
    assert demo.device.startswith("cuda")
    assert demo.probability.shape == (12, 37, 45)


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=["plain", "cells"])
def test_the_demo_networks_slice_head_alone_gives_the_logit_of_the_whole_forward(architecture):
    torch.manual_seed(0)
    network = DemoUNet(base=8, **architecture).eval()
    x = torch.randn(3, 1, 32, 48)

    with torch.no_grad():
        whole = network(x)[1]
        alone = network.slice_logits(x)

    assert alone.shape == (3, 1)
    assert torch.allclose(alone, whole, atol=1e-6)


def test_the_study_map_is_the_same_with_the_slice_head_alone_or_the_whole_network():
    class WithoutSliceHead(DemoUNet):
        slice_logits = None  # the explainer then runs the whole network

    torch.manual_seed(0)
    network = DemoUNet(base=8).eval()
    whole = WithoutSliceHead(base=8).eval()
    whole.load_state_dict(network.state_dict())
    spec = ModelSpec(name="d", version="1", saliency_layer="bottleneck", threshold=0.0)

    fast = run(network, _volume(), spec, device="cpu", saliency_top_k=4)
    slow = run(whole, _volume(), spec, device="cpu", saliency_top_k=4)

    assert fast.heatmap.any()
    assert np.allclose(fast.heatmap, slow.heatmap, atol=1e-5)
