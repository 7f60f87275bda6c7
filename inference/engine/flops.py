"""Counting a network's convolution FLOPs, so a benchmark can report achieved GFLOP/s."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def conv_flops(
    network: nn.Module, input_shape: tuple[int, int, int, int], device: str | torch.device | None = None
) -> int:
    """Convolution FLOPs (multiply and add counted as two) of one forward pass over a batch
    of `input_shape` (N, 1, H, W), counted by running one slice and scaling by N (a
    convolution's cost is linear in the batch). H and W should already be padded as the
    pipeline pads them. Works for eager and TorchScript networks."""
    batch, channels, height, width = input_shape
    if device is None:
        parameter = next(iter(network.parameters()), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    x = torch.zeros((1, channels, height, width), device=device).contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        network(x)
    per_op = counter.get_flop_counts().get("Global", {})
    per_slice = sum(int(count) for op, count in per_op.items() if "convolution" in str(op))
    return per_slice * batch
