"""Where a network's weights are, and the checks on them: no torch here, so the web processes,
which register and list models but never run them, do not import it (about 250 MB a process).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

NetworkFormat = Literal["torchscript", "state_dict"]


class WeightsError(RuntimeError):
    """The weights file is missing, not the one the manifest names, or does not load."""


@dataclass(frozen=True)
class NetworkSource:
    """Where a network's weights are and how to build it.

    `format` "torchscript" loads a scripted or traced module as it is; "state_dict" calls
    `entry_point` ("package.module:callable") with `kwargs` and loads the weights into it.
    """

    weights: Path
    sha256: str
    format: NetworkFormat = "state_dict"
    entry_point: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
