"""
training.deploy.convert: the authors' state-dict layouts, built here from random tensors, map onto our networks.

The authors' key names are generated below from their module structure (as their released code
declares it), independently of the converter's name tables: our networks register their tensors
in the authors' order, so tensor i of our state dict goes to authors' name i. The converter maps by
name; the tests check that both routes give the same network. No third-party weights are used.
"""

import copy
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fusion_ros.backends.torch_backend import exported_weights
from fusion_ros.core.imageio import read_ir, read_visible, write_image_atomic
from fusion_ros.core.model_card import load_card, sha256_of
from fusion_ros.networks.graphs import FloatGraph, FusionCore, Uint8Graph
from fusion_ros.networks.registry import build_model
from training.coconet.convert import from_released_state_dict
from training.deploy.convert import convert, convert_state, main, read_state_dict
from training.deploy.export import check_parity, export_graph, float_specs, uint8_specs
from training.deploy.samples import load_samples
from tests.test_coconet import released_state_dict as released_coconet_state_dict
from tests.msrs_fixtures import msrs_source


def authors_seafusion_names() -> list[tuple[str, bool]]:
    """(key, used) in FusionNet's registration order; used=False for its unused BatchNorm tensors."""
    def conv(path: str, bias: bool = True) -> list[tuple[str, bool]]:
        return [(f'{path}.weight', True)] + ([(f'{path}.bias', True)] if bias else [])

    names = []
    for src in ('vis', 'inf'):
        names += conv(f'{src}_conv.conv')
        for level in (1, 2):
            p = f'{src}_rgbd{level}'
            names += conv(f'{p}.dense.conv1.conv') + conv(f'{p}.dense.conv2.conv') + conv(f'{p}.convdown.conv')
            names += conv(f'{p}.sobelconv.convx', False) + conv(f'{p}.sobelconv.convy', False)
            names += conv(f'{p}.convup.conv')
    for level in (4, 3, 2, 1):
        names += conv(f'decode{level}.conv')
        names += [(f'decode{level}.bn.{leaf}', False)
                  for leaf in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')]
    return names


def authors_refusion_names() -> list[tuple[str, bool]]:
    """(key, is_conv) in ReFusion's registration order, one name per tensor."""
    def block(p: str) -> list[tuple[str, bool]]:
        return ([(f'{p}.norm1.body.weight', False), (f'{p}.norm1.body.bias', False), (f'{p}.attn.temperature', False)]
                + [(f'{p}.attn.{c}.weight', True) for c in ('qkv', 'qkv_dwconv', 'project_out')]
                + [(f'{p}.norm2.body.weight', False), (f'{p}.norm2.body.bias', False)]
                + [(f'{p}.ffn.{c}.weight', True) for c in ('project_in', 'dwconv', 'project_out')])

    names = [('project_in_1.weight', True), ('project_in_2.weight', True)]
    for stack in ('encoder1', 'encoder2'):
        names += block(f'{stack}.0') + block(f'{stack}.1')
    names += [('FM.temperature1', False), ('FM.temperature2', False)]
    fusion_convs = ('qkv1', 'qkv1_dwconv', 'qkv2', 'qkv2_dwconv', 'project_mid1', 'project_mid2', 'project_E',
                    'project_E_d', 'project_E1', 'project_E1_d', 'project_E2', 'project_E2_d', 'project_out1',
                    'project_out2')
    names += [(f'FM.{c}.weight', True) for c in fusion_convs]
    names += block('decoder.0') + block('decoder.1')
    return names + [('project_out_0.weight', True), ('project_out_1.weight', True)]


def random_net(method: str, seed: int = 0) -> torch.nn.Module:
    """Our network with every tensor random (not the default init, where temperatures and norms are all 1)."""
    torch.manual_seed(seed)
    net = build_model(method).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if method == 'refusion' and p.ndim < 4 else 0.0))
    return net


def seafusion_release(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our SeAFusion's tensors under FusionNet's key names, plus random BatchNorm tensors it never uses."""
    values = iter(net.state_dict().values())
    state = {}
    for key, used in authors_seafusion_names():
        if used:
            state[key] = next(values).clone()
        else:
            state[key] = torch.tensor(7) if key.endswith('num_batches_tracked') else torch.rand(3)
    assert next(values, None) is None
    return state


def refusion_release(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our ReFusion's tensors as the release stores them: every conv under x.weight and x.conv.weight."""
    names = authors_refusion_names()
    values = list(net.state_dict().values())
    assert len(names) == len(values) == 86
    state = {}
    for (key, is_conv), value in zip(names, values):
        state[key] = value.clone()
        if is_conv:
            state[key[:-len('weight')] + 'conv.weight'] = value.clone()
    return state


RELEASES = {'seafusion': seafusion_release, 'refusion': refusion_release}


@pytest.mark.parametrize('method', ['seafusion', 'refusion'])
def test_converted_release_is_the_same_network(method):
    net = random_net(method)
    release = RELEASES[method](net)
    if method == 'refusion':
        assert len(release) == 140
    converted = build_model(method).eval()
    converted.load_state_dict(convert_state(method, release))
    vis, ir = torch.rand(1, 1, 33, 47), torch.rand(1, 1, 33, 47)
    with torch.no_grad():
        torch.testing.assert_close(converted(vis, ir), net(vis, ir))


def test_refusion_accepts_either_copy_and_rejects_copies_that_differ():
    net = random_net('refusion')
    release = refusion_release(net)
    only_alias = {k: v for k, v in release.items() if not k.endswith('.conv.weight')}
    only_inner = {k: v for k, v in release.items() if k[:-len('weight')] + 'conv.weight' not in release}
    for state in (only_alias, only_inner):
        assert len(state) == 86
        for key, value in convert_state('refusion', state).items():
            torch.testing.assert_close(value, net.state_dict()[key])
    release['FM.project_E.conv.weight'] = release['FM.project_E.conv.weight'] + 1e-3
    with pytest.raises(ValueError, match=r"'FM\.project_E\.conv\.weight' and 'FM\.project_E\.weight'"):
        convert_state('refusion', release)


@pytest.mark.parametrize('method', ['seafusion', 'refusion'])
def test_wrong_missing_or_misshapen_keys_are_named(method):
    release = RELEASES[method](random_net(method))
    key = next(k for k in release if 'project_mid2' in k or 'inf_rgbd2.convup' in k)
    missing = {k: v for k, v in release.items() if k != key and not k.startswith(key.replace('.weight', '.conv'))}
    with pytest.raises(ValueError, match=f'key {key!r} missing'):
        convert_state(method, missing)
    with pytest.raises(ValueError, match="unexpected key 'extra.weight'"):
        convert_state(method, {**release, 'extra.weight': torch.zeros(1)})
    misshapen = {**release, key: torch.zeros(3, 3)}
    if method == 'refusion':
        misshapen.pop(key.replace('.weight', '.conv.weight'))
    with pytest.raises(ValueError, match=r"has shape \(3, 3\)"):
        convert_state(method, misshapen)


def test_coconet_release_goes_through_its_own_mapping(tmp_path):
    released = released_coconet_state_dict()
    torch.save({**released, 'epoch': 3}, tmp_path / 'coconet.pth')           # the wrapper the release saves
    state = read_state_dict(tmp_path / 'coconet.pth')
    converted = convert_state('coconet', state)
    expected = from_released_state_dict(released)
    assert converted.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(converted[key], value)
    with pytest.raises(ValueError, match='coconet checkpoint: .*conv11.weight'):
        convert_state('coconet', {**state, 'conv11.weight': torch.zeros(1)})


def test_not_a_state_dict_is_named(tmp_path):
    torch.save({'model': {'a': torch.zeros(1)}, 'epoch': 3}, tmp_path / 'wrapped.pth')
    with pytest.raises(ValueError, match='not a state dict'):
        read_state_dict(tmp_path / 'wrapped.pth')
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        read_state_dict(tmp_path / 'missing.pth')


def test_cli_exports_the_release_with_its_provenance(tmp_path):
    net = random_net('refusion', seed=1)
    release = tmp_path / 'ReFusion_IVIF.pth'
    torch.save(refusion_release(net), release)
    samples = tmp_path / 'samples'
    msrs_source(samples, (72, 56))
    out = tmp_path / 'models' / 'refusion_ivif.onnx'
    main(['--method', 'refusion', '--checkpoint', str(release), '--out', str(out), '--samples', str(samples)])
    card = load_card(out)
    source = card.provenance['source']
    assert card.method == 'refusion' and source['origin'] == "converted from the authors' release"
    assert source['file'] == 'ReFusion_IVIF.pth' and source['sha256'] == sha256_of(release)
    assert card.provenance['export']['command'].startswith('python -m training.deploy.convert')
    assert 'min-max' in card.provenance['notes'] and card.provenance['parameters'] == 59_856
    float_path = out.with_name('refusion_ivif_float.onnx')
    vis, ir = np.random.rand(1, 1, 41, 59).astype(np.float32), np.random.rand(1, 1, 41, 59).astype(np.float32)
    got = ort.InferenceSession(str(float_path)).run(None, {'visible_y': vis, 'ir': ir})[0]
    with torch.no_grad():
        ref = net(torch.from_numpy(vis), torch.from_numpy(ir)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    weights = exported_weights(out, load_card(out))['model']          # from the graph, which holds them all
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())


def test_convert_function_names_a_bad_method(tmp_path):
    with pytest.raises(ValueError, match="no converter for method 'densefuse'"):
        convert_state('densefuse', {})
    with pytest.raises(FileNotFoundError):
        convert('seafusion', tmp_path / 'none.pth', tmp_path / 'x.onnx', tmp_path)


RELEASED_REFUSION_MAGNITUDES = {'conv3x3': 0.177, 'conv1x1': 0.125, 'norm': (1.023, 0.038), 'norm_bias': 0.029,
                                'temperature': (1.009, 0.033)}
"""Mean/std of each kind of tensor in the authors' ReFusion_IVIF.pth, measured once (tests never read it)."""


def released_like_refusion(seed: int = 0, head_gain: float = 30.0) -> torch.nn.Module:
    """
    A random ReFusion with the released file's magnitudes per tensor kind.

    The head's last conv is scaled by ``head_gain`` so a 160x120 crop shows the float32 rounding
    that the released weights show at 640x480 (the sums over H x W are 16x shorter here), which
    keeps the test fast.
    """
    torch.manual_seed(seed)
    net = build_model('refusion').eval()
    m = RELEASED_REFUSION_MAGNITUDES
    with torch.no_grad():
        for name, p in net.named_parameters():
            if 'temperature' in name:
                p.copy_(m['temperature'][0] + m['temperature'][1] * torch.randn_like(p))
            elif p.ndim == 1 and name.endswith('bias'):
                p.copy_(m['norm_bias'] * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(m['norm'][0] + m['norm'][1] * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * m['conv3x3' if p.shape[-1] == 3 else 'conv1x1'])
        net.head[-1].weight.mul_(head_gain)
    return net


def real_crop_samples(folder, size=(160, 120)):
    """One real MSRS pair of tests/data (00091D), centre-cropped, as a samples folder for the exporter."""
    data = Path(__file__).parent / 'data' / 'pairs'
    ir, vis = read_ir(data / 'ir' / '00091D.png'), read_visible(data / 'vi' / '00091D.png')
    top, left = (ir.shape[0] - size[1]) // 2, (ir.shape[1] - size[0]) // 2
    for sub, image in (('ir', ir), ('vi', vis)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        write_image_atomic(folder / sub / '00091D.png', image[top:top + size[1], left:left + size[0]])
    return folder


def test_release_like_weights_convert_with_default_options(tmp_path):
    """Rounding above 1e-5 passes because ONNX Runtime is as close to a float64 run as PyTorch float32 is."""
    release = tmp_path / 'ReFusion_IVIF.pth'
    torch.save(refusion_release(released_like_refusion()), release)
    out = tmp_path / 'models' / 'refusion_ivif.onnx'
    main(['--method', 'refusion', '--checkpoint', str(release), '--out', str(out),
          '--samples', str(real_crop_samples(tmp_path / 'samples'))])
    parity = load_card(out).provenance['parity']
    assert parity['float_max_abs_diff'] > 1e-5           # the case the old fixed tolerance had to guess for
    errors = parity['float64_reference']['max_abs_error_by_sample']['00091D']
    assert errors['onnxruntime'] <= 4 * errors['pytorch_float32']
    assert parity['uint8_max_abs_diff'] <= 1


def test_a_graph_of_another_network_is_refused_however_large_the_rounding(tmp_path):
    """Swapping two same-shaped tensors (a classic conversion slip) is refused, not excused as rounding."""
    net = released_like_refusion()
    wrong = copy.deepcopy(net)
    with torch.no_grad():
        wrong.fusion.qkv_ir[0].weight.copy_(net.fusion.qkv_vis[0].weight)
        wrong.fusion.qkv_vis[0].weight.copy_(net.fusion.qkv_ir[0].weight)
    float_path, uint8_path = tmp_path / 'wrong_float.onnx', tmp_path / 'wrong.onnx'
    f_in, f_out = float_specs(None)
    u_in, u_out = uint8_specs(None)
    export_graph(FloatGraph(FusionCore(wrong)).eval(), (torch.rand(1, 1, 64, 80), torch.rand(1, 1, 64, 80)),
                 float_path, f_in, f_out, {t.name: {0: 'N', 2: 'H', 3: 'W'} for t in f_in + f_out}, 17)
    export_graph(Uint8Graph(FusionCore(wrong)).eval(),
                 (torch.randint(0, 256, (64, 80), dtype=torch.uint8),
                  torch.randint(0, 256, (64, 80, 3), dtype=torch.uint8)),
                 uint8_path, u_in, u_out, {t.name: {0: 'H', 1: 'W'} for t in u_in + u_out}, 17)
    samples = load_samples(real_crop_samples(tmp_path / 'samples'), 1)
    with pytest.raises(RuntimeError, match='computes something else'):
        check_parity(FusionCore(net), float_path, uint8_path, samples)
