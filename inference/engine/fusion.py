"""The network a job runs: each batch norm folded into the convolution before it.

In eval mode a batch norm is a fixed per-channel scale and shift, so it can live in the
convolution's weights and bias. The folded network computes the same function to float
rounding, and no longer spends a pass over every activation map on the norm: on a CPU that was
a tenth of the demo network's forward time on an Intel processor, and nearly half (85 to 46 ms a
512x512 slice) on an AMD Zen 5.

An eager network keeps its structure: in a copy, each folded convolution takes its norm's
place and the norm becomes an identity, so the layers keep their names (Grad-CAM hooks them by
name, and saliency runs the folded copy too) and the network its methods and attributes
(`slice_logits`, `size_multiple`). `torch.fx` finds the pairs: a norm whose only input is a
convolution that nothing else reads. A TorchScript network is frozen instead
(`torch.jit.freeze`). The copy is made once per loaded network and kept beside it, so a worker
folds each network once.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
import weakref
from collections import Counter

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

logger = logging.getLogger(__name__)

_folded: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _fold(network: nn.Module) -> nn.Module:
    if isinstance(network, torch.jit.ScriptModule):
        with warnings.catch_warnings():  # deprecated upstream, like the TorchScript it freezes
            warnings.filterwarnings("ignore", r"`torch\.jit\.freeze` is deprecated", DeprecationWarning)
            frozen: nn.Module = torch.jit.freeze(network.eval())  # folds conv + batch norm, and more
        return frozen
    graph = torch.fx.symbolic_trace(network).graph  # raises on data-dependent control flow
    result = copy.deepcopy(network)
    for (conv_name, convolution), (norm_name, norm) in _pairs(graph, dict(result.named_modules())):
        _replace(result, conv_name, fuse_conv_bn_eval(convolution, norm))
        _replace(result, norm_name, nn.Identity())
    return result.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def _pairs(
    graph: torch.fx.Graph, modules: dict[str, nn.Module]
) -> list[tuple[tuple[str, nn.Conv2d], tuple[str, nn.BatchNorm2d]]]:
    """The (convolution, norm) pairs, by name, where the norm reads the convolution's output
    alone, nothing else reads that output and each module is called once: folding them
    changes no other path through the network."""
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        source = node.args[0] if node.op == "call_module" and node.args else None
        if not isinstance(source, torch.fx.Node) or source.op != "call_module":
            continue
        norm, convolution = modules[str(node.target)], modules[str(source.target)]
        if (
            isinstance(norm, nn.BatchNorm2d)
            and norm.track_running_stats
            and isinstance(convolution, nn.Conv2d)
            and type(convolution) is nn.Conv2d  # not a subclass with a forward of its own
            and len(source.users) == 1
            and calls[node.target] == calls[source.target] == 1
        ):
            pairs.append(((str(source.target), convolution), (str(node.target), norm)))
    return pairs


def _replace(network: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(network.get_submodule(parent), child, module)


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
