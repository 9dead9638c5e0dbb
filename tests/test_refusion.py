"""ReFusion: fusion module F (size, parameters, ONNX parity), the meta step through P, resume, P's maps."""

import csv
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from fusion_ros.core.model_card import load_card
from fusion_ros.networks.graphs import FloatGraph, FusionCore
from fusion_ros.networks.refusion import FP32_OPS, ReFusion
from fusion_ros.networks.registry import build_model
from fusion_ros.tensorrt.onnx_support import graph_ops, SUPPORTED_OPS
from training.common.checkpoint import load_checkpoint, save_checkpoint
from training.common.config import config_from_dict, config_to_dict
from training.deploy.export import export, export_graph, float_specs
from training.refusion.train import main, MetaTrainer
from training.refusion.meta import blend_distance, fusion_loss, gradients, LossProposal, meta_step, MetaNets, \
    MetaSettings, proposal_step, Reconstruction, reconstruction_loss, weight_spread
from tests.msrs_fixtures import msrs_source


def tiny(tmp_path, out: str, **overrides):
    raw = {'method': 'refusion', 'sources': [msrs_source(tmp_path / 'data', (64, 48))], 'val_source': 'msrs',
           'val_count': 1, 'val_eval_count': 1, 'crop': 24, 'batch_size': 2, 'max_steps': 6, 'lr': 1e-3,
           'min_lr': 1e-3, 'meta_every': 2, 'log_every': 1, 'val_every': 3, 'ckpt_every': 2, 'threads': 1,
           'out_dir': str(tmp_path / out)}
    return config_from_dict({**raw, **overrides})


def make_nets(seed: int = 0) -> MetaNets:
    torch.manual_seed(seed)
    f, p, r = ReFusion(), LossProposal(), Reconstruction()
    return MetaNets(f, p, r, *(torch.optim.Adam(n.parameters(), lr=1e-3) for n in (f, p, r)))


def test_parameter_count_matches_the_released_checkpoints_and_no_conv_has_a_bias():
    model = build_model('refusion')
    assert sum(p.numel() for p in model.parameters()) == 59_856
    assert len(model.state_dict()) == 86                           # the 86 distinct tensors of the release
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_any_size_unit_range_and_each_source_matters():
    torch.manual_seed(0)
    model = ReFusion().eval()
    vis, ir = torch.rand(2, 1, 37, 53), torch.rand(2, 1, 37, 53)
    with torch.no_grad():
        out = model(vis, ir)
        assert out.shape == (2, 1, 37, 53) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert not torch.allclose(model(vis, torch.zeros_like(ir)), out)
        assert not torch.allclose(model(torch.zeros_like(vis), ir), out)


def test_dynamic_onnx_export_matches_pytorch_at_an_odd_size(tmp_path):
    torch.manual_seed(0)
    core = FusionCore(ReFusion()).eval()
    path = tmp_path / 'refusion_float.onnx'
    inputs, outputs = float_specs()
    nchw = {0: 'N', 2: 'H', 3: 'W'}
    export_graph(FloatGraph(core).eval(), (torch.rand(1, 1, 64, 80), torch.rand(1, 1, 64, 80)), path, inputs,
                 outputs, {t.name: nchw for t in inputs + outputs}, 17)
    vis, ir = torch.rand(1, 1, 257, 333), torch.rand(1, 1, 257, 333)
    with torch.no_grad():
        ref = core(vis, ir)[0].numpy()
    got = ort.InferenceSession(str(path), providers=['CPUExecutionProvider']).run(
        None, {'visible_y': vis.numpy(), 'ir': ir.numpy()})[0]
    assert got.shape == (1, 1, 257, 333)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    ops = graph_ops(onnx.load(str(path)))
    assert ops <= SUPPORTED_OPS
    assert {'ReduceL2', 'LayerNormalization'} <= ops and set(FP32_OPS) <= ops   # the fp16 list names real ops


def test_fusion_loss_follows_the_proposed_weights():
    ir, vis = torch.ones(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)        # zero padding gives IR gradients at the border
    sources = torch.cat([ir, vis], dim=1)
    weights = torch.zeros(1, 2, 2, 8, 8)
    weights[:, 0, 0] = 1.0                                            # intensity: all on IR
    weights[:, 1, 1] = 1.0                                            # gradient: all on visible
    assert float(fusion_loss(weights, vis, sources)) == pytest.approx(1.0)
    ir_grad = float((gradients(ir) ** 2).mean())
    assert ir_grad > 0 and float(fusion_loss(weights, ir, sources)) == pytest.approx(ir_grad)
    estimate = torch.cat([ir, vis + 0.5], dim=1)                      # visible off by 0.5, IR exact
    expected = 0.25 + float((gradients(vis + 0.5) ** 2).mean())
    assert float(reconstruction_loss(estimate, sources)) == pytest.approx(expected)


def test_proposal_weights_are_a_softmax_across_sources():
    torch.manual_seed(0)
    weights = LossProposal()(torch.rand(2, 1, 20, 24), torch.rand(2, 1, 20, 24))
    assert weights.shape == (2, 2, 2, 20, 24)
    torch.testing.assert_close(weights.sum(2), torch.ones(2, 2, 20, 24))


def test_meta_step_reaches_the_proposal_through_the_inner_step_only():
    nets = make_nets()
    before = {k: v.clone() for k, v in nets.fusion.state_dict().items()}
    r_before = {k: v.clone() for k, v in nets.reconstruction.state_dict().items()}
    p_before = [p.clone() for p in nets.proposal.parameters()]
    meta_step(nets, (torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)), MetaSettings(inner_lr=0.01))
    grads = [p.grad for p in nets.proposal.parameters()]
    assert all(g is not None for g in grads)
    assert float(nets.proposal.body[-1].weight.grad.abs().sum()) > 0    # the zero-initialised output conv learns
    assert not torch.equal(p_before[-2], nets.proposal.body[-1].weight)
    for key, value in nets.fusion.state_dict().items():              # F and R are not stepped by the meta step
        torch.testing.assert_close(value, before[key])
    for key, value in nets.reconstruction.state_dict().items():
        torch.testing.assert_close(value, r_before[key])
    # Without the inner step P would get no gradient at all: the outer loss sees P only through F'.
    nets = make_nets()
    meta_step(nets, (torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)), MetaSettings(inner_lr=0.0))
    assert sum(float(p.grad.abs().sum()) for p in nets.proposal.parameters()) == 0.0


def test_resume_reproduces_the_uninterrupted_run_and_maps_are_not_constant(tmp_path):
    MetaTrainer(tiny(tmp_path, 'straight')).run()
    MetaTrainer(tiny(tmp_path, 'split', max_steps=4)).run()
    config_file = tmp_path / 'split.yaml'                              # the rest through the CLI's --resume
    config_file.write_text(yaml.safe_dump(config_to_dict(tiny(tmp_path, 'split'))))
    main(['--config', str(config_file), '--resume'])
    a, b = (load_checkpoint(tmp_path / name / 'last.pt') for name in ('straight', 'split'))
    assert a['step'] == b['step'] == 6 and a['command'].startswith('python -m training.refusion.train')
    for part in ('model', 'proposal', 'reconstruction'):
        for key, value in a[part].items():
            torch.testing.assert_close(b[part][key], value, rtol=1e-5, atol=1e-6)
    with (tmp_path / 'split' / 'train_log.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r['step']) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(r['std_w_int']) > 1e-5 and float(r['std_w_grad']) > 1e-5 for r in rows)
    with (tmp_path / 'straight' / 'val_log.csv').open() as handle:
        val = list(csv.DictReader(handle))
    assert [int(v['step']) for v in val] == [3, 6] and {'val_loss', 'Qabf', 'VIF'} <= set(val[0])
    assert (tmp_path / 'split' / 'best.pt').exists()
    uint8_path, _ = export(tmp_path / 'split' / 'last.pt', tmp_path / 'refusion.onnx', tmp_path / 'data')
    card = load_card(uint8_path)                                      # through the registry, no ReFusion path
    assert card.method == 'refusion'
    assert card.provenance['training']['command'].startswith('python -m training.refusion.train')
    assert card.provenance['parity']['uint8_max_abs_diff'] <= 1 and card.provenance['parameters'] == 59_856
    assert card.provenance['parity']['float_tolerance'] == 1e-5        # rounding beyond it: float64 check
    assert [r['last_logged_step'] for r in card.provenance['training']['runs']] == [6]


def test_proposal_maps_start_uniform_and_move_under_training(tmp_path):
    """P starts as the plain equal-weight loss; a few meta steps on real crops give it spatial structure."""
    trainer = MetaTrainer(tiny(tmp_path, 'run', lr=3e-3, min_lr=3e-3, meta_every=1, crop=32))
    vis, ir, _ = (torch.from_numpy(a) for a in trainer.sampler.batch(2))
    with torch.no_grad():
        start = trainer.nets.proposal(ir, vis)
    torch.testing.assert_close(start, torch.full_like(start, 0.5))
    for _ in range(8):
        trainer.train_step()
        trainer.step += 1
    with torch.no_grad():
        spread = weight_spread(trainer.nets.proposal(ir, vis))
    assert min(spread) > 2e-4


def test_plot_puts_the_weight_map_spread_on_its_own_axis(tmp_path):
    from matplotlib.figure import Figure
    from training.common.plot_log import _plot_row, plot_runs
    run = tmp_path / 'refusion'
    run.mkdir()
    (run / 'train_log.csv').write_text('step,rec_loss,fusion_loss,r_loss,std_w_int,std_w_grad,seconds\n'
                                       '10,0.5,0.1,0.4,0.001,0.002,5\n20,0.4,0.09,0.3,0.004,0.003,9\n')
    (run / 'val_log.csv').write_text('step,val_loss,Qabf,VIF\n20,0.3,0.2,0.4\n')
    plot_runs([run], tmp_path / 'curves.png')
    assert (tmp_path / 'curves.png').read_bytes()[:4] == b'\x89PNG'
    fig = Figure()
    left, right = fig.subplots(1, 2)
    _plot_row(run, left, right)
    twin = next(a for a in fig.axes if a not in (left, right) and a.bbox.bounds == left.bbox.bounds)
    assert [line.get_label() for line in left.lines] == ['rec_loss', 'fusion_loss', 'r_loss']   # log-scale losses
    assert [line.get_label() for line in twin.lines] == ['std_w_int', 'std_w_grad']


def test_every_lead_trains_and_the_phased_schedule_steps_one_network_at_a_time(tmp_path):
    """meta_phase 2: steps 0-1 move P only, steps 2-3 move F (and R) only; every lead switch runs."""
    config = tiny(tmp_path, 'leads', proposal='restormer', outer_step='maxnorm', inner_step='sgd', meta_phase=2,
                  swap_sources=True, grad_ramp=True, batch_size=1, crop=16)
    trainer = MetaTrainer(config)

    def snapshot():
        return [torch.cat([p.detach().flatten() for p in net.parameters()])
                for net in (trainer.nets.fusion, trainer.nets.proposal)]

    moved = []
    for _ in range(4):
        before = snapshot()
        parts = trainer.train_step()
        trainer.step += 1
        moved.append([not torch.equal(a, b) for a, b in zip(before, snapshot())])
        assert np.isfinite(parts['rec_loss']) and {'std_w_int', 'std_w_grad', 'fusion_loss'} <= set(parts)
    assert moved == [[False, True], [False, True], [True, False], [True, False]]
    assert trainer.batch()[0].shape[0] == 2                                   # one pair, fed in both orders


def test_maxnorm_moves_p_by_exactly_fs_learning_rate_at_its_largest_entry():
    nets = make_nets()
    settings = MetaSettings(outer_step='maxnorm', lr=1e-3)
    grads = [torch.randn_like(p) for p in nets.proposal.parameters()]
    before = [p.detach().clone() for p in nets.proposal.parameters()]
    proposal_step(nets, grads, settings)
    steps = [(a - p.detach()).abs().max() for a, p in zip(before, nets.proposal.parameters())]
    torch.testing.assert_close(max(steps), torch.tensor(1e-3))


def test_unknown_step_kinds_and_proposals_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match='inner_step'):
        MetaTrainer(tiny(tmp_path, 'x', inner_step='adam'))
    with pytest.raises(ValueError, match='outer_step'):
        MetaTrainer(tiny(tmp_path, 'x', outer_step='sgd'))
    with pytest.raises(ValueError, match='proposal'):
        MetaTrainer(tiny(tmp_path, 'x', proposal='unet'))


def test_blend_distance_is_zero_for_the_blend_and_grows_away_from_it():
    sources = torch.rand(1, 2, 8, 8)
    weights = torch.softmax(torch.randn(1, 2, 2, 8, 8), dim=2)
    blend = (weights[:, 0] * sources).sum(1, keepdim=True)
    assert blend_distance(weights, blend, sources) < 1e-4
    assert blend_distance(weights, blend + 10 / 255, sources) == pytest.approx(10, abs=1e-3)


def test_gradient_ramp_scales_only_the_gradient_term():
    sources, fused = torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8)
    weights = torch.full((1, 2, 2, 8, 8), 0.5)
    no_grad_term = fusion_loss(weights, fused, sources, grad_weight=0.0)
    full, half = fusion_loss(weights, fused, sources), fusion_loss(weights, fused, sources, grad_weight=0.5)
    torch.testing.assert_close(half - no_grad_term, (full - no_grad_term) / 2)


def test_init_from_starts_f_and_r_from_a_checkpoint_and_p_afresh(tmp_path):
    first = MetaTrainer(tiny(tmp_path, 'first', meta_every=1))
    for _ in range(2):
        first.train_step()
        first.step += 1
    save_checkpoint(tmp_path / 'first.pt', first.state())
    second = MetaTrainer(tiny(tmp_path, 'second', init_from=str(tmp_path / 'first.pt')))
    for a, b in ((first.nets.fusion, second.nets.fusion), (first.nets.reconstruction, second.nets.reconstruction)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.count_nonzero(second.nets.proposal.body[-1].weight)     # P's last conv: zero, maps flat


def test_ablation_report_gives_each_row_relative_to_the_reference_and_a_plot(tmp_path):
    from training.common.run_log import logged_wall_seconds
    from training.refusion.ablation import report
    scores = {m: 1.0 for m in ('EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf')}
    (tmp_path / 'reference.json').write_text(json.dumps({'weights': 'ref.pt', 'pairs': 2, 'scores': scores}))
    for name, factor in (('start', 0.5), ('baseline', 0.9)):
        (tmp_path / name).mkdir()
        row = {'row': name, 'lead': {}, 'steps': 3, 'train_seconds': 1.0,
               'scores': {**{m: factor for m in scores}, 'SF': factor / 2, 'std_w_int': 0.01, 'std_w_grad': 0.02,
                          'blend_distance': 3.0}}
        (tmp_path / name / 'row.json').write_text(json.dumps(row))
    table = report(tmp_path)
    assert '| start | - | 3 | 1 | 0.0100 / 0.0200 | 3.00 | 0.500 | 0.500 | 0.250 |' in table
    rows = json.loads((tmp_path / 'ablation.json').read_text())['rows']
    assert rows[1]['relative_mean'] == pytest.approx((7 * 0.9 + 0.45) / 8) and rows[1]['relative_min'] == 0.45
    assert (tmp_path / 'ablation.png').read_bytes()[:4] == b'\x89PNG'
    assert logged_wall_seconds([5.0, 10.0, 3.0, 8.0]) == 18       # the rows' wall time: resumed once, 10 s + 8 s


def test_contrast_proposal_weights_the_brighter_and_the_more_textured_source():
    from training.refusion.meta import make_proposal
    ir = torch.full((1, 1, 16, 16), 0.8)                                   # bright and flat
    vis = torch.full((1, 1, 16, 16), 0.3)
    vis[..., 0::4] = vis[..., 1::4] = 0.5                                  # dark, striped (period 4)
    weights = make_proposal('contrast')(ir, vis)[0, :, :, 4:12, 4:12]      # away from the zero-padded border
    assert weights[0, 0].min() > 0.99                                      # intensity: IR
    assert weights[1, 1].min() > 0.99                                      # gradient: visible
    assert [p.numel() for p in make_proposal('contrast').parameters()] == [1]


@pytest.mark.parametrize('kind', ['conv', 'restormer'])
def test_a_randomly_initialised_proposal_starts_from_non_flat_maps(kind):
    from training.refusion.meta import make_proposal, weight_spread
    torch.manual_seed(0)
    ir, vis = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    flat = weight_spread(make_proposal(kind)(ir, vis))
    assert flat == (0.0, 0.0)                                              # zero last conv: constant maps
    spread = weight_spread(make_proposal(kind, 'random')(ir, vis))
    assert min(spread) > 1e-4                                              # default init: maps vary in space
    with pytest.raises(ValueError, match='proposal_init must be one of'):
        make_proposal(kind, 'ones')
