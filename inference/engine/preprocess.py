"""What the network sees: HU clipped to the model's window and scaled to -1..1, padded with air.

Training and inference both go through `normalise_hu`, so the two cannot drift apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AIR_HU = -1000.0


def normalise_hu(hu: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    """HU clipped to `window` and mapped linearly onto -1..1 (float32)."""
    low, high = window
    centre, half = (low + high) / 2, (high - low) / 2
    # One new tensor, then in place: a 300-slice series is 300 MB, and each temporary costs a
    # pass over it and the page faults of a fresh allocation.
    return hu.float().clamp(low, high).sub_(centre).div_(half)


def padding_for(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Rows and columns to add at the bottom and right so both sizes divide by `multiple`."""
    return (-height) % multiple, (-width) % multiple


def pad_slices(x: torch.Tensor, multiple: int, window: tuple[float, float]) -> torch.Tensor:
    """Pads (..., H, W) normalised slices at the bottom and right with air to a multiple of
    `multiple`, so the network's poolings and upsamplings line up; crop outputs to (H, W)."""
    pad_h, pad_w = padding_for(x.shape[-2], x.shape[-1], multiple)
    if pad_h == 0 and pad_w == 0:
        return x
    air = float(normalise_hu(torch.tensor(AIR_HU), window))
    return F.pad(x, (0, pad_w, 0, pad_h), value=air)
