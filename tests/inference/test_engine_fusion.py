"""folded: the network a job runs, its batch norms folded into its convolutions."""

from __future__ import annotations

import logging

import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn

from inference.engine.fusion import folded
from inference.engine.network import DemoUNet

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _trained_looking_unet(**architecture: object) -> DemoUNet:
    """A small U-Net whose norms are not the identity a fresh one starts with."""
    torch.manual_seed(0)
    network = DemoUNet(base=4, depth=2, **architecture)  # type: ignore[arg-type]
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)  # type: ignore[union-attr]
            module.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    return network.eval()


def _norms(network: nn.Module) -> int:
    return sum(isinstance(module, nn.BatchNorm2d) for module in network.modules())


@pytest.mark.parametrize("architecture", [{}, {"stem": 2, "skips": "add"}], ids=["plain", "cells"])
@pytest.mark.parametrize("kind", ["eager", "torchscript"])
def test_the_folded_network_computes_what_the_network_does_without_its_norms(
    kind: str, architecture: dict[str, object]
) -> None:
    network: nn.Module = _trained_looking_unet(**architecture)
    if kind == "torchscript":
        network = torch.jit.script(network)
    x = torch.randn(3, 1, 40, 48).contiguous(memory_format=torch.channels_last)

    result = folded(network)

    with torch.inference_mode():
        expected, got = network(x), result(x)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-4, atol=1e-4)
    if kind == "eager":
        assert _norms(network) == 10
        assert _norms(result) == 0
        assert result.size_multiple == network.size_multiple
    else:
        assert "batch_norm" in str(network.inlined_graph)
        assert "batch_norm" not in str(result.inlined_graph)


def test_an_eager_network_keeps_its_layers_names_and_methods() -> None:
    network = _trained_looking_unet()
    x = torch.randn(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)

    result = folded(network)

    assert type(result) is DemoUNet
    names = {name for name, _ in network.named_modules()}
    assert {name for name, _ in result.named_modules()} == names
    with torch.inference_mode():
        torch.testing.assert_close(result.slice_logits(x), network.slice_logits(x), rtol=1e-4, atol=1e-4)


def test_grad_cam_on_a_named_layer_of_the_folded_network_sees_what_it_saw_before() -> None:
    """Saliency runs the folded network and hooks the layers the model card names."""
    network = _trained_looking_unet()
    x = torch.randn(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)

    def study_map(net: nn.Module) -> torch.Tensor:
        return LayerGradCam(lambda x: net.slice_logits(x)[:, 0], net.get_submodule("bottleneck")).attribute(x)

    maps = [study_map(network), study_map(folded(network))]

    assert maps[0].abs().max() > 0
    torch.testing.assert_close(maps[1], maps[0], rtol=1e-3, atol=1e-5)


class _SharedOutput(nn.Module):
    """The convolution's output feeds its norm and a second path: folding would change that path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.norm = nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return self.norm(y), y


def test_a_norm_is_not_folded_into_a_convolution_whose_output_is_read_elsewhere() -> None:
    network = _SharedOutput().eval()
    network.norm.running_mean.fill_(0.3)  # type: ignore[operator]
    x = torch.randn(1, 1, 8, 8)

    result = folded(network)

    assert isinstance(result.norm, nn.BatchNorm2d)
    with torch.inference_mode():
        for got, expected in zip(result(x), network(x), strict=True):
            torch.testing.assert_close(got, expected)


def test_a_network_is_folded_once_and_left_as_it_was() -> None:
    network = _trained_looking_unet()
    before = {name: value.clone() for name, value in network.state_dict().items()}

    first = folded(network)

    assert folded(network) is first
    assert first is not network
    assert _norms(network) == 10
    for name, value in network.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_a_network_in_training_mode_is_not_folded() -> None:
    network = _trained_looking_unet().train()

    assert folded(network) is network


class _DataDependent(_SharedOutput):
    """Symbolic tracing cannot follow a branch on the input's values."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.norm(self.conv(x))
        if x.sum() > 0:
            y = y * 2
        return y, torch.amax(y, dim=(2, 3))


def test_a_network_that_cannot_be_traced_runs_unfolded_with_a_warning(caplog: pytest.LogCaptureFixture):
    network = _DataDependent().eval()

    with caplog.at_level(logging.WARNING, logger="inference.engine.fusion"):
        result = folded(network)

    assert result is network
    assert "runs without folded batch norms" in caplog.text
    assert folded(network) is network  # and it does not try again
