"""Name -> network constructor, so checkpoints and exports rebuild models from their config alone."""

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
