"""
Run the authors' released checkpoints: map their state-dict layout onto our networks and export.

    python -m training.deploy.convert --method seafusion|coconet|refusion --checkpoint FILE --out models/NAME.onnx \
        [--samples tests/data/pairs]

The weights are only renamed (and de-duplicated, or unused tensors dropped), never changed, so
the exported graphs compute what the authors' network computes, minus their test scripts' output
post-processing (see NOTES). Export, parity checks, torch weights and cards are training.deploy.export's;
the card's provenance names the file, its sha256 and the release it came from. Every key of the
file must be known, and every tensor of our network must be found, with its shape: anything else
is an error naming the key. No third-party weights ship with this project.
"""

import argparse
from pathlib import Path
import re
import sys
from typing import Callable, Optional

import torch

from fusion_ros.core.model_card import sha256_of
from fusion_ros.networks.graphs import core_from_weights
from fusion_ros.networks.registry import build_model
from training.coconet.convert import from_released_state_dict
from training.deploy.export import export_core

StateDict = dict[str, torch.Tensor]

UNUSED_SEAFUSION = re.compile(r'decode\d\.bn\.')   # BatchNorm2d declared in ConvBn* blocks, never applied

RELEASES = {
    'seafusion': 'https://github.com/Linfeng-Tang/SeAFusion (FusionNet, fusionmodel_final.pth)',
    'refusion': 'https://github.com/HaowenBai/ReFusion (ReFusion, models/ReFusion_*.pth)',
    'coconet': 'https://github.com/runjia0124/CoCoNet (Unet_resize_conv, {"state_dict": ...} checkpoints)',
}

NOTES = {
    'seafusion': 'The released FusionNet declares BatchNorm layers in its decoder that forward() never applies; '
                 'their tensors are dropped. The released test script min-max normalises each output batch; '
                 'this graph does not (a per-frame gain flickers on video).',
    'refusion': 'The released checkpoints store every conv twice (x.weight and x.conv.weight); the two copies '
                'were checked to be equal. The released test script min-max normalises every output image; '
                'this graph does not (a per-frame gain flickers on video).',
    'coconet': 'The released network declares se_32 and att_deconv9, which forward() never calls; their tensors '
               'are dropped. The released test script feeds [0, 255] without eval(); this graph runs the '
               'network in eval mode on [0, 1] inputs, as methods.md describes.',
}


def seafusion_key_map() -> dict[str, str]:
    """Map the authors' FusionNet keys to our SeAFusion keys (the unused BatchNorm tensors are not in it)."""
    grdb = {'dense.conv1.conv': 'dense1.0', 'dense.conv2.conv': 'dense2.0', 'convdown.conv': 'fuse',
            'sobelconv.convx': 'sobel.gx', 'sobelconv.convy': 'sobel.gy', 'convup.conv': 'grad'}
    modules = {}
    for theirs, ours in (('vis', 'vis_encoder'), ('inf', 'ir_encoder')):
        modules[f'{theirs}_conv.conv'] = f'{ours}.0.0'
        for level in (1, 2):
            modules.update({f'{theirs}_rgbd{level}.{a}': f'{ours}.{level}.{b}' for a, b in grdb.items()})
    modules.update({'decode4.conv': 'decoder.0.0', 'decode3.conv': 'decoder.1.0', 'decode2.conv': 'decoder.2.0',
                    'decode1.conv': 'decoder.3'})
    sobel = {'sobel.gx', 'sobel.gy'}     # depthwise Sobel convs have no bias
    return {f'{a}.{leaf}': f'{b}.{leaf}' for a, b in modules.items() for leaf in ('weight', 'bias')
            if not (leaf == 'bias' and any(b.endswith(s) for s in sobel))}


def refusion_key_map() -> dict[str, str]:
    """Map the authors' ReFusion keys (one name per tensor, ``x.weight`` for convs) to our ReFusion keys."""
    block = {'norm1.body.weight': 'norm1.weight', 'norm1.body.bias': 'norm1.bias',
             'norm2.body.weight': 'norm2.weight', 'norm2.body.bias': 'norm2.bias',
             'attn.temperature': 'attn.temperature', 'attn.qkv.weight': 'attn.qkv.0.weight',
             'attn.qkv_dwconv.weight': 'attn.qkv.1.weight', 'attn.project_out.weight': 'attn.proj.weight',
             'ffn.project_in.weight': 'ffn.expand.weight', 'ffn.dwconv.weight': 'ffn.dw.weight',
             'ffn.project_out.weight': 'ffn.shrink.weight'}
    fusion = {'temperature1': 'temperature_ir', 'temperature2': 'temperature_vis',
              'qkv1.weight': 'qkv_ir.0.weight', 'qkv1_dwconv.weight': 'qkv_ir.1.weight',
              'qkv2.weight': 'qkv_vis.0.weight', 'qkv2_dwconv.weight': 'qkv_vis.1.weight',
              'project_mid1.weight': 'proj_ir.weight', 'project_mid2.weight': 'proj_vis.weight',
              'project_E.weight': 'gates.0.weight', 'project_E_d.weight': 'gates.1.weight',
              'project_E1.weight': 'value_ir.0.weight', 'project_E1_d.weight': 'value_ir.1.weight',
              'project_E2.weight': 'value_vis.0.weight', 'project_E2_d.weight': 'value_vis.1.weight',
              'project_out1.weight': 'out_ir.weight', 'project_out2.weight': 'out_vis.weight'}
    keys = {'project_in_1.weight': 'embed_ir.weight', 'project_in_2.weight': 'embed_vis.weight',
            'project_out_0.weight': 'head.0.weight', 'project_out_1.weight': 'head.2.weight'}
    keys.update({f'FM.{a}': f'fusion.{b}' for a, b in fusion.items()})
    for theirs, ours in (('encoder1', 'ir_blocks'), ('encoder2', 'vis_blocks'), ('decoder', 'fused_blocks')):
        keys.update({f'{theirs}.{i}.{a}': f'{ours}.{i}.{b}' for i in (0, 1) for a, b in block.items()})
    return keys


def rename(state: StateDict, key_map: dict[str, str], method: str) -> StateDict:
    """Apply a key map; a key of the file it does not know, or one it expects and the file lacks, is an error."""
    unknown = [k for k in state if k not in key_map]
    if unknown:
        raise ValueError(f'unexpected key {unknown[0]!r} in the {method} checkpoint ({len(unknown)} unknown)')
    missing = [k for k in key_map if k not in state]
    if missing:
        raise ValueError(f'key {missing[0]!r} missing from the {method} checkpoint ({len(missing)} missing)')
    return {key_map[k]: v for k, v in state.items()}


def convert_seafusion(state: StateDict) -> StateDict:
    """Drop the decoder's unused BatchNorm tensors (``decodeN.bn.*``), then rename."""
    return rename({k: v for k, v in state.items() if not UNUSED_SEAFUSION.match(k)}, seafusion_key_map(), 'seafusion')


def convert_refusion(state: StateDict) -> StateDict:
    """
    Fold each conv's two copies (``x.weight``, ``x.conv.weight``) into one, then rename.

    Either copy alone is accepted (a file saved without the alias); where both exist they must
    be equal, or the file is not what the release wrote.
    """
    single: StateDict = {}
    for key, value in state.items():
        if key.endswith('.conv.weight'):
            alias = key[:-len('.conv.weight')] + '.weight'
            if alias in state and not torch.equal(state[alias], value):
                raise ValueError(f'ReFusion checkpoint: {key!r} and {alias!r} should be the same tensor and differ')
            key = alias
        single[key] = value
    return rename(single, refusion_key_map(), 'refusion')


def convert_coconet(state: StateDict) -> StateDict:
    """Apply CoCoNet's mapping (training.coconet.convert, kept with its network); key errors become ValueErrors."""
    try:
        return from_released_state_dict(state)
    except KeyError as err:
        raise ValueError(f'coconet checkpoint: {err.args[0]}') from None


CONVERTERS: dict[str, Callable[[StateDict], StateDict]] = {
    'seafusion': convert_seafusion,
    'refusion': convert_refusion,
    'coconet': convert_coconet,
}


def read_state_dict(path: Path) -> StateDict:
    """Load a released checkpoint as plain tensors (weights_only: a downloaded file runs no code)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']         # {'state_dict': ..., 'epoch': ...}, as CoCoNet's release saves
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path} is not a state dict (a mapping of names to tensors)')
    return state


def check_shapes(method: str, state: StateDict) -> None:
    """Every converted tensor must have the shape our network expects; name the first that does not."""
    expected = build_model(method).state_dict()
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(f'{method} checkpoint: {key!r} has shape {tuple(value.shape)}, '
                             f'the network expects {tuple(expected[key].shape)}')


def convert_state(method: str, state: StateDict) -> StateDict:
    """Map a released state dict onto our network's keys, checking names and shapes."""
    if method not in CONVERTERS:
        raise ValueError(f'no converter for method {method!r}; known: {", ".join(sorted(CONVERTERS))}')
    ours = CONVERTERS[method](state)
    check_shapes(method, ours)
    return ours


def convert(method: str, checkpoint: Path, out: Path, samples_dir: Path, opset: int = 17,
            command: Optional[str] = None) -> tuple[Path, Path]:
    """Convert a released checkpoint and export both graphs with a card naming the source; returns their paths."""
    ours = convert_state(method, read_state_dict(checkpoint))
    core = core_from_weights({'method': method, 'model': ours})
    origin = {'source': {'origin': "converted from the authors' release", 'method': method,
                         'release': RELEASES.get(method, ''), 'file': Path(checkpoint).name,
                         'sha256': sha256_of(checkpoint)},
              'notes': NOTES.get(method, '')}
    command = command or 'python -m training.deploy.convert ' + ' '.join(sys.argv[1:])
    return export_core(core, method, out, samples_dir, origin, command, opset)


def main(argv: Optional[list[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--method', required=True, choices=sorted(CONVERTERS))
    parser.add_argument('--checkpoint', required=True, type=Path, help="the authors' released .pth file")
    parser.add_argument('--out', required=True, type=Path, help='uint8 graph path, e.g. models/refusion_ivif.onnx')
    parser.add_argument('--samples', type=Path, default=Path('tests/data/pairs'),
                        help='folder with ir/ and vi/ sample pairs for the parity check')
    parser.add_argument('--opset', type=int, default=17)
    args = parser.parse_args(argv)
    for path in convert(args.method, args.checkpoint, args.out, args.samples, args.opset):
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB) and {path.with_suffix(".json").name}')


if __name__ == '__main__':
    main()
