"""Training-curve plots from the CSV logs of every kind of run."""

from training.common.plot_log import plot_runs, read_columns


def test_plots_runs_with_different_loss_columns(tmp_path):
    content, joint = tmp_path / 'content', tmp_path / 'joint'
    for run in (content, joint):
        run.mkdir()
    (content / 'train_log.csv').write_text('step,loss,l_rec,l_bce,lr,seconds\n'
                                           '25,0.9,0.1,0.8,0.001,3\n50,0.5,0.05,0.45,0.001,6\n')
    (content / 'val_log.csv').write_text('step,val_loss,Qabf,VIF\n50,0.4,0.3,0.6\n')
    (joint / 'train_log.csv').write_text('step,stage,phase,loss,l_sem,seconds\n'
                                         '1,0,segmenter,1.4,,1\n2,1,fusion,1.7,1.2,2\n')
    (joint / 'val_log.csv').write_text('stage,step,val_loss,Qabf,VIF,miou_fused,miou_visible\n'
                                       '0,2,0.3,0.7,0.9,0.2,0.25\n')
    out = tmp_path / 'curves.png'
    plot_runs([content, joint], out)
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b'\x89PNG'
    columns = read_columns(joint / 'train_log.csv')
    assert columns['l_sem'][0] != columns['l_sem'][0] and columns['l_sem'][1] == 1.2   # empty cell -> NaN
