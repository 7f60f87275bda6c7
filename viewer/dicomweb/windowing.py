"""Rendering parameters (PS3.18 8.3.5.1) and the VOI window functions (PS3.3 C.11.2.1.2)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from viewer.dicomweb.http import BadRequest

MAX_VIEWPORT = 4096
# We render no text onto images, so `annotation` is accepted and has nothing to
# add; `iccprofile` is accepted and images are sRGB as they are.
_ACCEPTED = {"window", "viewport", "quality", "annotation", "iccprofile", "charset"}
_THUMBNAIL_ACCEPTED = {"viewport", "charset"}


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "linear"

    FUNCTIONS: ClassVar[tuple[str, ...]] = ("linear", "linear-exact", "sigmoid")


@dataclass(frozen=True)
class RenderingOptions:
    window: Window | None = None
    viewport: tuple[int, int] | None = None
    quality: int = 90


def parse_rendering(params: Mapping[str, Any], *, thumbnail: bool) -> RenderingOptions:
    """The rendering options of a request's query parameters, or a 400."""
    accepted = _THUMBNAIL_ACCEPTED if thumbnail else _ACCEPTED
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; accepted: {', '.join(sorted(accepted))}")
    return RenderingOptions(
        window=_window(params["window"]) if "window" in params else None,
        viewport=_viewport(params["viewport"]) if "viewport" in params else None,
        quality=_quality(params["quality"]) if "quality" in params else 90,
    )


def _window(text: str) -> Window:
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise BadRequest("window is center,width[,linear|linear-exact|sigmoid]")
    centre, width = _finite(parts[0], "window center"), _finite(parts[1], "window width")
    function = parts[2].strip().lower() if len(parts) == 3 else "linear"
    if function not in Window.FUNCTIONS:
        raise BadRequest("the window function is linear, linear-exact or sigmoid")
    if width <= 0 or (function == "linear" and width < 1):
        raise BadRequest("the window width must be positive (at least 1 for linear)")
    return Window(centre, width, function)


def _finite(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{what} must be a number") from None
    if not math.isfinite(value):
        raise BadRequest(f"{what} must be a finite number")
    return value


def _viewport(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() and part.strip().isascii() for part in parts):
        raise BadRequest("viewport is width,height in pixels (cropping is not supported)")
    width, height = (int(part) for part in parts)
    if not (1 <= width <= MAX_VIEWPORT and 1 <= height <= MAX_VIEWPORT):
        raise BadRequest(f"viewport sizes are between 1 and {MAX_VIEWPORT}")
    return width, height


def _quality(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 100):
        raise BadRequest("quality is a whole number from 1 to 100")
    return int(text)


def windowed(values: np.ndarray, window: Window) -> np.ndarray:
    """Values mapped through the window onto 0..1 (PS3.3 C.11.2.1.2)."""
    centre, width = window.center, window.width
    if window.function == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(np.clip(-4.0 * (values - centre) / width, -500, 500))))
    if window.function == "linear-exact":
        return np.clip((values - centre) / width + 0.5, 0.0, 1.0)
    return np.clip((values - (centre - 0.5)) / max(width - 1.0, 1e-9) + 0.5, 0.0, 1.0)
