"""The network the forward pass runs: each batch norm folded into the convolution before it.

In eval mode a batch norm is a fixed per-channel scale and shift, so it can live in the
convolution's weights and bias (`torch.fx.experimental.optimization.fuse` for eager networks,
`torch.jit.freeze` for TorchScript ones). The folded network computes the same function to
float rounding, and the forward pass no longer spends a pass over every activation map on the
norm: on a CPU that was about a tenth of the demo network's forward time.

Saliency keeps the network as loaded: Grad-CAM hooks the layers the model names, which the
folded copy no longer has as modules. The copy is made once per loaded network and kept beside
it, so a worker folds each network once.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
import weakref

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

logger = logging.getLogger(__name__)

_folded: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _fold(network: nn.Module) -> nn.Module:
    if isinstance(network, torch.jit.ScriptModule):
        with warnings.catch_warnings():  # deprecated upstream, like the TorchScript it freezes
            warnings.filterwarnings("ignore", r"`torch\.jit\.freeze` is deprecated", DeprecationWarning)
            frozen: nn.Module = torch.jit.freeze(network.eval())  # folds conv + batch norm, and more
        return frozen
    result = fuse(copy.deepcopy(network))  # symbolic trace; conv + batch norm pairs only
    if hasattr(network, "size_multiple"):  # the pipeline pads to it
        result.size_multiple = network.size_multiple
    return result.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def folded(network: nn.Module) -> nn.Module:
    """`network` in eval mode with its batch norms folded into its convolutions, made once per
    network object. A network that cannot be traced (data-dependent control flow) or frozen
    is returned as it is, with a warning in the log: it runs, only without the saving."""
    if network.training:
        return network  # a batch norm that still learns is not a fixed scale and shift
    with _lock:
        if network in _folded:
            return _folded[network]
        try:
            with torch.inference_mode(False), torch.no_grad():
                result = _fold(network)
        except Exception as error:  # any tracing or freezing failure means "run it unfolded"
            logger.warning("network %s runs without folded batch norms: %s", type(network).__name__, error)
            result = network
        _folded[network] = result
        return result
