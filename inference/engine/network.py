"""The demonstration network: a small 2D U-Net with a per-slice "lesion present" head.

Every network the engine runs, TorchScript or eager, keeps the contract of `DemoUNet.forward`:
one (N, 1, H, W) batch of preprocessed slices in, a pair out: segmentation logits
(N, C, H, W) and one slice logit (N, 1). H and W must be multiples of `size_multiple`; the
runner pads to that.
"""

from __future__ import annotations

import torch
from torch import nn


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    """Upsample by two, join the skip connection from the encoder, convolve.

    The skip joins by concatenation (the classic U-Net) or, with `add`, by addition: no
    channel-interleaving copy, and a first convolution half as wide.
    """

    def __init__(self, in_channels: int, out_channels: int, *, add: bool = False) -> None:
        super().__init__()
        self.add = add
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.convolve = _double_conv(out_channels if add else 2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        return self.convolve(x + skip if self.add else torch.cat([x, skip], dim=1))


class DemoUNet(nn.Module):
    """A 2D U-Net: `depth` poolings, channels doubling from `base` at each level.

    With `stem` s > 1 the network works on s x s cells: each cell's pixels become channels
    on the way in (`PixelUnshuffle`) and the segmentation head predicts each cell's s x s
    logits, put back in place on the way out (`PixelShuffle`, a sub-pixel convolution). So no
    convolution runs at full resolution on a few channels, the layers that leave a CPU's
    vector units idle and its caches overflowing. `skips="add"` joins the skip connections by
    addition (see `_Up`). The defaults are the plain U-Net of the first demonstration model
    (1.0.0), so its manifest still builds it.

    The slice head takes the bottleneck's global max (not the mean): a lesion makes some
    feature fire somewhere, however much air surrounds it, so the head means the same on a
    128-pixel training crop and on a whole 512-pixel slice.
    """

    def __init__(
        self, base: int = 16, depth: int = 3, classes: int = 1, stem: int = 1, skips: str = "concat"
    ) -> None:
        super().__init__()
        if skips not in ("concat", "add"):
            raise ValueError(f"skips must be 'concat' or 'add', not {skips!r}")
        widths = [base * 2**level for level in range(depth + 1)]
        self.size_multiple = stem * 2**depth
        self.stem: nn.Module = nn.PixelUnshuffle(stem) if stem > 1 else nn.Identity()
        self.encoders = nn.ModuleList(
            [_double_conv(stem * stem, widths[0])]
            + [_double_conv(widths[k], widths[k + 1]) for k in range(depth - 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[depth - 1], widths[depth])
        self.decoders = nn.ModuleList(
            [_Up(widths[k + 1], widths[k], add=skips == "add") for k in reversed(range(depth))]
        )
        self.segmentation_head = nn.Conv2d(widths[0], classes * stem * stem, 1)
        self.unstem: nn.Module = nn.PixelShuffle(stem) if stem > 1 else nn.Identity()
        self.slice_head = nn.Linear(widths[depth], 1)
        # Lesions are about 1% of pixels: starting the mask at that prior keeps the early
        # steps from spending themselves on pushing every background pixel down.
        nn.init.constant_(self.segmentation_head.bias, -4.0)  # type: ignore[arg-type]  # bias=True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, skips = self._encode(x)
        slice_logit = self.slice_head(torch.amax(x, dim=(2, 3)))
        for k, decoder in enumerate(self.decoders):
            x = decoder(x, skips[-1 - k])
        return self.unstem(self.segmentation_head(x)), slice_logit

    def slice_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The slice head alone, (N, 1): forward's second output without the decoder, which
        is most of the compute (the study's saliency runs this)."""
        x, _ = self._encode(x)
        head: torch.Tensor = self.slice_head(torch.amax(x, dim=(2, 3)))
        return head

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(x)
        skips: list[torch.Tensor] = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        return self.bottleneck(x), skips
