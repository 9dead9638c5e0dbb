"""CoCoNet: architecture, padding, the VGG-19 branch, the released-layout conversion and the training objectives."""

import csv

import pytest
import torch
import torch.nn.functional as F

from fusion_ros.networks.coconet import BRANCH_END, CoCoNet, gray_vgg19_features, gray_vgg_state_dict, reflect_pad
from fusion_ros.networks.registry import build_model
from training.common.checkpoint import load_checkpoint
from training.coconet.convert import from_released_state_dict
from training.coconet.objective import load_branch, read_vgg_file
from training.common.config import config_from_dict, parse_command_line
from training.common.data import CropSampler, load_sources
from training.common.objectives import objective_for
from training.common.train import train
from tests.msrs_fixtures import msrs_source

# The released Unet_resize_conv, as (name, c_in, c_out, kernel) of its convs and (name, channels) of its BNs.
RELEASED_CONVS = [('conv1_1', 2, 32, 3), ('conv1_2', 32, 32, 3), ('conv2_1', 32, 64, 3), ('conv2_2', 64, 64, 3),
                  ('conv3_1', 64, 128, 3), ('conv3_2', 128, 128, 3), ('conv4_1', 128, 256, 3),
                  ('deconv4', 768, 256, 3), ('conv4_2', 256, 256, 3), ('deconv6', 256, 128, 3),
                  ('att_deconv7', 384, 128, 3), ('conv7_1', 256, 128, 3), ('conv7_2', 128, 128, 3),
                  ('deconv7', 128, 64, 3), ('att_deconv8', 192, 64, 3), ('conv8_1', 128, 64, 3),
                  ('conv8_2', 64, 64, 3), ('deconv8', 64, 32, 3), ('att_deconv9', 96, 32, 3),
                  ('conv9_1', 64, 32, 3), ('conv9_2', 32, 32, 3), ('conv10', 32, 1, 1)]
RELEASED_BNS = [('bn1_1', 32), ('bn1_2', 32), ('bn2_1', 64), ('bn2_2', 64), ('bn3_1', 128), ('bn3_2', 128),
                ('bn4_1', 256), ('bn4_2', 256), ('bn7_1', 128), ('bn7_2', 128), ('bn8_1', 64), ('bn8_2', 64),
                ('bn9_1', 32)]
RELEASED_VGG = [('slice1.0', 1, 64), ('slice1.3', 64, 64), ('slice2.6', 64, 128), ('slice2.8', 128, 128),
                ('slice3.11', 128, 256), ('slice3.13', 256, 256), ('slice3.15', 256, 256), ('slice3.17', 256, 256)]


def released_state_dict(seed: int = 0) -> dict:
    """Random tensors under the authors' key names (se_32 and att_deconv9 included), scaled to stay finite."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, c_in, c_out, k):
        sd[f'{name}.weight'] = torch.randn(c_out, c_in, k, k, generator=g) * (2.0 / (c_in * k * k)) ** 0.5
        sd[f'{name}.bias'] = torch.randn(c_out, generator=g) * 0.01

    for name, c_in, c_out, k in RELEASED_CONVS:
        conv(name, c_in, c_out, k)
    for name, c in RELEASED_BNS:
        sd.update({f'{name}.weight': 1 + 0.1 * torch.randn(c, generator=g),
                   f'{name}.bias': 0.1 * torch.randn(c, generator=g),
                   f'{name}.running_mean': 0.1 * torch.randn(c, generator=g),
                   f'{name}.running_var': 0.5 + torch.rand(c, generator=g),
                   f'{name}.num_batches_tracked': torch.tensor(7)})
    for c in (32, 64, 128, 256):
        for part in ('conv_1', 'conv_2', 'conv_3'):
            conv(f'se_{c}.{part}', c, c, 3)
        sd[f'se_{c}.gamma'] = torch.tensor([0.3])
    for name, c_in, c_out in RELEASED_VGG:
        conv(f'vgg19.{name}', c_in, c_out, 3)
    return {'state_dict': sd}


def released_forward(sd: dict, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Run the released forward in eval mode, written against the authors' key names; inputs in [-1, 1]."""
    def conv(name, x):
        w = sd[f'{name}.weight']
        return F.conv2d(x, w, sd[f'{name}.bias'], padding=w.shape[-1] // 2)

    def block(s, j, x, bn=True):
        y = F.leaky_relu(conv(f'conv{s}_{j}', x), 0.2)
        if not bn:
            return y
        b = f'bn{s}_{j}'
        return F.batch_norm(y, sd[f'{b}.running_mean'], sd[f'{b}.running_var'], sd[f'{b}.weight'], sd[f'{b}.bias'])

    def cam(c, x):
        n = x.shape[0]
        q = conv(f'se_{c}.conv_1', x).view(n, c, -1)
        k = conv(f'se_{c}.conv_2', x).view(n, c, -1).permute(0, 2, 1)
        v = conv(f'se_{c}.conv_3', x)
        energy = torch.bmm(q, k)
        attention = torch.softmax(torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy, -1)
        return sd[f'se_{c}.gamma'] * torch.bmm(attention, v.view(n, c, -1)).view_as(v) + v

    def vgg(x):
        def relu_conv(name, y):
            return F.relu(conv(f'vgg19.{name}', y))
        h1 = relu_conv('slice1.3', F.max_pool2d(relu_conv('slice1.0', x), 2))
        h2 = relu_conv('slice2.8', relu_conv('slice2.6', F.max_pool2d(h1, 2)))
        h3 = F.max_pool2d(h2, 2)
        for index in (11, 13, 15, 17):
            h3 = relu_conv(f'slice3.{index}', h3)
        return h1, h2, h3

    def up(x):
        return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)

    v2, v3, v4 = vgg(vis)
    i2, i3, i4 = vgg(ir)
    conv1 = block(1, 2, block(1, 1, torch.cat([vis, ir], 1)))
    conv2 = block(2, 2, block(2, 1, F.max_pool2d(conv1, 2)))
    conv3 = block(3, 2, block(3, 1, F.max_pool2d(conv2, 2)))
    x = block(4, 1, F.max_pool2d(conv3, 2))
    conv4 = block(4, 2, conv('deconv4', torch.cat([cam(256, x), cam(256, v4), cam(256, i4)], 1)))
    att7 = conv('att_deconv7', torch.cat([cam(128, conv3), cam(128, v3), cam(128, i3)], 1))
    conv7 = block(7, 2, block(7, 1, torch.cat([conv('deconv6', up(conv4)), att7], 1)))
    att8 = conv('att_deconv8', torch.cat([cam(64, conv2), cam(64, v2), cam(64, i2)], 1))
    conv8 = block(8, 2, block(8, 1, torch.cat([conv('deconv7', up(conv7)), att8], 1)))
    conv9 = block(9, 2, block(9, 1, torch.cat([conv('deconv8', up(conv8)), conv1], 1)), bn=False)
    return torch.tanh(conv('conv10', conv9))


def vgg_file(tmp_path, channels: int = 1, seed: int = 0):
    """Write a torchvision-format VGG-19 state dict to relu5_1 (classifier keys included, as torchvision has them)."""
    torch.manual_seed(seed)
    state = {f'features.{k}': v for k, v in gray_vgg19_features(30).state_dict().items()}
    if channels == 3:
        state['features.0.weight'] = torch.randn(64, 3, 3, 3)
    state['classifier.0.weight'] = torch.zeros(4, 4)
    path = tmp_path / f'vgg{channels}_{seed}.pt'
    torch.save(state, path)
    return path


def test_parameter_counts():
    model = build_model('coconet')
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 6_789_764
    assert sum(p.numel() for p in model.parameters() if not p.requires_grad) == 2_324_416
    assert all(not p.requires_grad for p in model.vgg.parameters())


def test_any_size_passes_and_output_is_in_unit_range():
    model = CoCoNet().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53))
    assert out.shape == (1, 1, 37, 53)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_reflect_pad_gives_left_and_top_the_smaller_half():
    x = torch.arange(37 * 53, dtype=torch.float32).view(1, 1, 37, 53)
    padded, top, left = reflect_pad(x)
    assert padded.shape == (1, 1, 48, 64) and (top, left) == (5, 5)    # 11 rows: 5 + 6, 11 columns: 5 + 6
    torch.testing.assert_close(padded[..., top:top + 37, left:left + 53], x)
    torch.testing.assert_close(padded[..., top - 1, left:left + 53], x[..., 1, :])   # reflection, not replication
    same, top, left = reflect_pad(torch.zeros(1, 1, 32, 48))
    assert same.shape == (1, 1, 32, 48) and (top, left) == (0, 0)


def test_gray_vgg_state_dict_folds_rgb_kernels_and_names_missing_keys(tmp_path):
    state = torch.load(vgg_file(tmp_path, channels=3), weights_only=True)
    gray = gray_vgg_state_dict(state, BRANCH_END)
    rgb = state['features.0.weight']
    torch.testing.assert_close(gray['0.weight'], 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:])
    assert '28.weight' not in gray and '16.weight' in gray
    del state['features.16.bias']
    with pytest.raises(KeyError, match='features.16.bias'):
        gray_vgg_state_dict(state, BRANCH_END)


def test_branch_is_loaded_from_the_vgg_file_and_a_missing_file_is_an_error(tmp_path):
    model = CoCoNet()
    path = vgg_file(tmp_path, seed=3)
    load_branch(model, str(path))
    torch.testing.assert_close(model.vgg.features[16].weight, torch.load(path)['features.16.weight'])
    with pytest.raises(ValueError, match='CoCoNet needs VGG-19 weights'):
        objective_for(config_from_dict({'method': 'coconet'}))
    with pytest.raises(FileNotFoundError, match='nowhere.pt'):
        read_vgg_file(str(tmp_path / 'nowhere.pt'))
    (tmp_path / 'c.yaml').write_text('method: coconet\n')
    config, _ = parse_command_line('', ['--config', str(tmp_path / 'c.yaml'), '--vgg-weights', str(path)])
    assert config.vgg_weights == str(path)


@pytest.mark.parametrize('size', [(32, 48), (37, 53)])
def test_released_layout_converts_to_the_same_outputs(size):
    released = released_state_dict()
    model = CoCoNet().eval()
    model.load_state_dict(from_released_state_dict(released))
    sd = released['state_dict']
    vis, ir = torch.rand(1, 1, *size), torch.rand(1, 1, *size)
    h, w = size
    dh, dw = (16 - h % 16) % 16, (16 - w % 16) % 16
    pads = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
    with torch.no_grad():
        ref = released_forward(sd, F.pad(vis * 2 - 1, pads, mode='reflect'), F.pad(ir * 2 - 1, pads, mode='reflect'))
        ref = ref[..., pads[2]:pads[2] + h, pads[0]:pads[0] + w] / 2 + 0.5
        torch.testing.assert_close(model(vis, ir), ref, rtol=1e-5, atol=1e-5)
    dropped = sum(v.numel() for k, v in sd.items() if k.startswith(('se_32.', 'att_deconv9.')))
    assert dropped == 55_425


def test_released_conversion_rejects_unknown_and_missing_keys():
    sd = released_state_dict()['state_dict']
    with pytest.raises(KeyError, match='conv11.weight'):
        from_released_state_dict({**sd, 'conv11.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='lacks 1 tensor'):
        from_released_state_dict({k: v for k, v in sd.items() if k != 'conv7_2.bias'})
    converted = from_released_state_dict({f'module.{k}': v for k, v in sd.items() if 'num_batches' not in k})
    assert int(converted['bottom.2.num_batches_tracked']) == 0


def tiny_config(tmp_path, vgg, **overrides):
    raw = {'method': 'coconet', 'vgg_weights': str(vgg), 'sources': [msrs_source(tmp_path / 'data')],
           'val_source': 'msrs', 'val_count': 1, 'val_eval_count': 1, 'crop': 32, 'batch_size': 3, 'max_steps': 2,
           'log_every': 1, 'val_every': 2, 'ckpt_every': 2, 'threads': 1, 'out_dir': str(tmp_path / 'stage1')}
    return config_from_dict({**raw, **overrides})


def test_both_stages_train_through_the_shared_trainer(tmp_path):
    vgg = vgg_file(tmp_path)
    train(tiny_config(tmp_path, vgg))
    first = load_checkpoint(tmp_path / 'stage1' / 'last.pt')
    assert first['step'] == 2
    torch.testing.assert_close(first['model']['vgg.features.0.weight'], torch.load(vgg)['features.0.weight'])
    train(tiny_config(tmp_path, vgg, objective='coconet_contrastive', init_from=str(tmp_path / 'stage1' / 'last.pt'),
                      target_crops=0.67, out_dir=str(tmp_path / 'stage2')))
    second = load_checkpoint(tmp_path / 'stage2' / 'last.pt')
    assert not torch.equal(second['model']['head.weight'], first['model']['head.weight'])
    torch.testing.assert_close(second['model']['vgg.features.16.weight'], first['model']['vgg.features.16.weight'])
    with (tmp_path / 'stage2' / 'train_log.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert {'l_ssim', 'l_mse', 'l_fg', 'l_bg'} <= set(rows[0])
    assert all(float(r['l_fg']) > 0 for r in rows)       # two of three crops hold a box: L_fg takes part


def test_a_continued_run_keeps_the_branch_it_starts_from(tmp_path):
    vgg = vgg_file(tmp_path, seed=5)
    train(tiny_config(tmp_path, vgg))
    start = load_checkpoint(tmp_path / 'stage1' / 'last.pt')['model']
    train(tiny_config(tmp_path, '', init_from=str(tmp_path / 'stage1' / 'last.pt'), lr=1e-3, min_lr=1e-3,
                      out_dir=str(tmp_path / 'continued')))             # stage 1 again, no VGG file at all
    other_vgg = tmp_path / 'other'
    other_vgg.mkdir()
    train(tiny_config(tmp_path, vgg_file(other_vgg, seed=6), objective='coconet_contrastive', target_crops=0.67,
                      init_from=str(tmp_path / 'continued' / 'last.pt'), out_dir=str(tmp_path / 'stage2')))
    for run in ('continued', 'stage2'):                                # stage 2 with another VGG file
        continued = load_checkpoint(tmp_path / run / 'last.pt')['model']
        assert not torch.equal(continued['head.weight'], start['head.weight'])
        for key in ('vgg.features.0.weight', 'vgg.features.16.weight'):
            torch.testing.assert_close(continued[key], start[key])   # frozen, not reset, not replaced
    with pytest.raises(ValueError, match='CoCoNet needs VGG-19 weights'):
        objective_for(tiny_config(tmp_path, ''))                     # a fresh start still needs the file


def test_stage1_loss_falls_on_tiny_crops(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(tmp_path, vgg_file(tmp_path))
    objective = objective_for(config)
    model = objective.train_module(build_model('coconet'))
    sampler = CropSampler(load_sources(config.sources), crop=32, seed=0)
    batches = [tuple(torch.from_numpy(a) for a in sampler.batch(2)) for _ in range(2)]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def mean_loss() -> float:
        with torch.no_grad():
            return sum(float(objective.loss(model(v, i), v, i, m, config)[0]) for v, i, m in batches) / 2

    before = mean_loss()
    for step in range(12):
        vis, ir, masks = batches[step % 2]
        loss, _ = objective.loss(model(vis, ir), vis, ir, masks, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert mean_loss() < 0.7 * before       # 0.46 of it when written
