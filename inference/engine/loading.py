"""Loading a network from its weights file, checked against the sha256 its manifest records.

A worker process loads each network once per device: `load_network` caches by (sha256,
device), so the second job on a worker starts at the forward pass.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

from inference.engine.source import NetworkSource, WeightsError, file_sha256

_cache: dict[tuple[str, str], nn.Module] = {}
_lock = threading.Lock()


def _build(source: NetworkSource, device: torch.device) -> nn.Module:
    if source.format == "torchscript":
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream but is still how models are exchanged here.
            warnings.filterwarnings("ignore", r"`torch\.jit\.load` is deprecated", DeprecationWarning)
            module: nn.Module = torch.jit.load(str(source.weights), map_location=device)
        return module
    if source.format != "state_dict":
        raise WeightsError(f"unknown network format {source.format!r}; expected torchscript or state_dict")
    module_name, _, attribute = source.entry_point.partition(":")
    if not module_name or not attribute:
        raise WeightsError(f"entry point {source.entry_point!r} is not 'package.module:callable'")
    factory = getattr(importlib.import_module(module_name), attribute)
    network: nn.Module = factory(**source.kwargs)
    state = torch.load(source.weights, map_location=device, weights_only=True)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise WeightsError(f"{source.weights} does not fit {source.entry_point}: {error}") from error
    return network


def load_network(source: NetworkSource, device: str | torch.device = "cpu") -> nn.Module:
    """The network in eval mode on `device`, channels-last, without parameter gradients,
    after checking the weights' sha256.

    Cached per process by (sha256, device): calling again returns the same module object.
    Raises WeightsError when the file is missing, its sha256 differs from `source.sha256`,
    or it does not load.
    """
    device = torch.device(device)
    key = (source.sha256.lower(), str(device))
    with _lock:
        if key in _cache:
            return _cache[key]
        if not Path(source.weights).is_file():
            raise WeightsError(f"weights file {source.weights} does not exist")
        actual = file_sha256(Path(source.weights))
        if actual != source.sha256.lower():
            raise WeightsError(
                f"weights file {source.weights} has sha256 {actual}, but the manifest expects "
                f"{source.sha256}; refusing to load a network that is not the one registered"
            )
        network = _build(source, device).to(device).eval()
        network = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # A served network never learns: saliency differentiates activations and inputs only,
        # and without parameter gradients its passes record no graph before the explained layer.
        for parameter in network.parameters():  # ScriptModules lack requires_grad_()
            parameter.requires_grad_(False)
        _cache[key] = network
        return network


def clear_cache() -> None:
    """Forgets every loaded network (tests; a worker never needs to)."""
    with _lock:
        _cache.clear()
