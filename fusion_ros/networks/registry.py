"""Name -> network constructor, so checkpoints and exports rebuild models from their config alone."""

import importlib
from typing import Any

from torch import nn

from fusion_ros.networks.coconet import CoCoNet
from fusion_ros.networks.realtime import RealtimeFusion
from fusion_ros.networks.refusion import ReFusion
from fusion_ros.networks.seafusion import SeAFusion
from fusion_ros.networks.sgfusion import SGFusion

MODELS = {'seafusion': SeAFusion, 'sgfusion': SGFusion, 'refusion': ReFusion, 'coconet': CoCoNet,
          'realtime': RealtimeFusion}


def build_model(method: str) -> nn.Module:
    """Instantiate the network named in a config or checkpoint."""
    try:
        return MODELS[method]()
    except KeyError:
        raise ValueError(f'unknown method {method!r}; known: {", ".join(sorted(MODELS))}') from None


def declared(method: str, name: str, default: Any) -> Any:
    """
    Read a constant a method's network module declares (FP32_OPS...), else default.

    Why module constants: what an exporter must treat specially is a fact of the network, so it is
    written beside the network and found from the method name alone; unknown methods get the default.
    """
    network = MODELS.get(method)
    return getattr(importlib.import_module(network.__module__), name, default) if network else default
