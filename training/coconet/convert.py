"""
Map the authors' released CoCoNet state dict ("Unet_resize_conv", runjia0124/CoCoNet) onto fusion_ros's CoCoNet.

The released checkpoints hold ``{'state_dict': ...}`` with one key per module of ``Unet_resize_conv``:
``conv{s}_{j}`` / ``bn{s}_{j}`` for the U-Net blocks, ``se_64/128/256`` (channel attention, convs
``conv_1..3`` and ``gamma``), ``deconv4`` / ``att_deconv7`` / ``att_deconv8`` (the 3C -> C merges),
``deconv6/7/8`` (the convs after upsampling), ``conv10`` (the head) and ``vgg19.slice1..3`` (the gray
VGG-19, numbered with the extra max-pool inserted at position 2). ``se_32`` and ``att_deconv9`` are
declared but never called in its forward (55,425 parameters): they are dropped. Only the layout is
taken from the authors' code; no weights are downloaded or shipped.
"""

from typing import Mapping

import torch

from fusion_ros.networks.coconet import CoCoNet

DROPPED = ('se_32', 'att_deconv9')
ATTENTION_PARTS = {'conv_1': 'query', 'conv_2': 'key', 'conv_3': 'value'}


def released_module_map() -> dict[str, str]:
    """Map each of the authors' module names to ours (a block's BN is index 2 of our ConvBlock: conv, LeakyReLU, BN)."""
    names: dict[str, str] = {}
    blocks = {(1, 1): 'encoder.0.0', (1, 2): 'encoder.0.1', (2, 1): 'encoder.1.0', (2, 2): 'encoder.1.1',
              (3, 1): 'encoder.2.0', (3, 2): 'encoder.2.1', (4, 1): 'encoder.3', (4, 2): 'bottom',
              (7, 1): 'decoder.2.0', (7, 2): 'decoder.2.1', (8, 1): 'decoder.1.0', (8, 2): 'decoder.1.1',
              (9, 1): 'decoder.0.0', (9, 2): 'decoder.0.1'}
    for (s, j), ours in blocks.items():
        names[f'conv{s}_{j}'] = f'{ours}.0'
        if (s, j) != (9, 2):                       # the last full-resolution block has no BN
            names[f'bn{s}_{j}'] = f'{ours}.2'
    for level, channels in enumerate((64, 128, 256)):
        for theirs, ours in ATTENTION_PARTS.items():
            names[f'se_{channels}.{theirs}'] = f'attention.{level}.{ours}'
        names[f'se_{channels}'] = f'attention.{level}'          # gamma
    names.update({'att_deconv8': 'merge.0', 'att_deconv7': 'merge.1', 'deconv4': 'merge.2',
                  'deconv8': 'reduce.0', 'deconv7': 'reduce.1', 'deconv6': 'reduce.2', 'conv10': 'head'})
    return names


def _vgg_key(key: str) -> str:
    """vgg19.sliceS.N.param -> vgg.features.M.param: the released numbering counts the extra pool at 2."""
    _, _, index, param = key.split('.')
    n = int(index)
    if n == 2:
        raise KeyError(f'{key}: position 2 of the released VGG branch is a max-pool and has no parameters')
    return f'vgg.features.{n if n < 2 else n - 1}.{param}'


def from_released_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """
    Return a state dict for ``CoCoNet`` from the authors' layout (a raw state dict or ``{'state_dict': ...}``).

    A ``module.`` prefix (DataParallel) is stripped; ``se_32`` and ``att_deconv9`` are dropped; a missing
    BatchNorm ``num_batches_tracked`` (old PyTorch) becomes 0. Unknown keys, missing keys and wrong
    shapes are errors that name them.
    """
    if 'state_dict' in state and isinstance(state['state_dict'], Mapping):
        state = state['state_dict']
    modules = released_module_map()
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        if key.split('.')[0] in DROPPED:
            continue
        if key.startswith('vgg19.'):
            out[_vgg_key(key)] = value
            continue
        module, _, param = key.rpartition('.')
        if module not in modules:
            unknown.append(key)
            continue
        out[f'{modules[module]}.{param}'] = value
    if unknown:
        raise KeyError(f'{len(unknown)} key(s) not in the released CoCoNet layout: {", ".join(unknown[:5])}')
    expected = CoCoNet().state_dict()
    for key in expected:
        if key not in out and key.endswith('num_batches_tracked'):
            out[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in out]
    if missing:
        raise KeyError(f'released state dict lacks {len(missing)} tensor(s), e.g. {", ".join(missing[:5])}')
    bad = [f'{k} {tuple(out[k].shape)} != {tuple(v.shape)}' for k, v in expected.items() if out[k].shape != v.shape]
    if bad:
        raise ValueError(f'shape mismatch: {"; ".join(bad[:5])}')
    return out
