"""TensorBoard: a training run's scalars, and the search's per-candidate scalars, read back."""
import json

import pytest
from analysis_helpers import (REPO_ROOT, TENSORBOARD_LINE, read_scalars, run_script,
                              run_subprocess, write_child_config)

pytest.importorskip('tensorboard', reason='tensorboard is a test dependency (requirements.txt)')


@pytest.fixture(scope='module')
def tb_run(tmp_path_factory, roads, seg101_config):
    """Two iterations of a repository config with the TensorBoard backend switched on."""
    tmp = tmp_path_factory.mktemp('tb_run')
    cfg = write_child_config(
        tmp / 'tb.py', seg101_config, roads, max_iters=2, extra_lines=[TENSORBOARD_LINE])
    run_subprocess([REPO_ROOT / 'tools' / 'train.py', cfg, '--work-dir', tmp / 'work'])
    (vis_dir, ) = (tmp / 'work').glob('*/vis_data')
    return vis_dir


def test_training_writes_events_that_match_the_json_log(tb_run):
    assert list(tb_run.glob('events.out.tfevents.*')), sorted(p.name for p in tb_run.iterdir())
    events = read_scalars(tb_run)
    lines = [json.loads(line) for line in (tb_run / 'scalars.json').read_text().splitlines()]
    train = [entry for entry in lines if 'loss' in entry]
    assert [entry['step'] for entry in train] == [1, 2]
    assert [s for s, _ in events['loss']] == [1, 2]
    for (step, value), entry in zip(events['loss'], train):
        assert value == pytest.approx(entry['loss'], rel=1e-6)
    # validation metrics of SegPaperMetric at the last iteration
    (val, ) = [entry for entry in lines if 'mIoU' in entry]
    assert events['mIoU'] == [(2, pytest.approx(val['mIoU'], rel=1e-6))]
    assert 'IoU.road' in events and 0.0 <= events['IoU.road'][0][1] <= 100.0


def test_command_line_switch_replaces_the_json_backend(seg101_config, tmp_path):
    """``--cfg-options visualizer.vis_backends.0.type=TensorboardVisBackend`` on any config."""
    from mmengine.visualization import Visualizer

    from seg101_mm.tools.common import load_config
    cfg = load_config(seg101_config, {'visualizer.vis_backends.0.type': 'TensorboardVisBackend'})
    assert cfg.visualizer.vis_backends == [dict(type='TensorboardVisBackend')]
    vis_cfg = dict(cfg.visualizer, name='tb_switch_test', save_dir=str(tmp_path))
    vis_cfg.pop('type')
    visualizer = Visualizer(**vis_cfg)
    visualizer.add_scalars({'loss': 0.5}, step=3)
    visualizer.close()
    assert read_scalars(tmp_path / 'vis_data') == {'loss': [(3, 0.5)]}


def test_analyze_logs_reads_the_run(tb_run, tmp_path, capsys):
    out = tmp_path / 'curves.png'
    run_script('analyze_logs', [tb_run / 'scalars.json', '--keys', 'loss', 'mIoU', '--out', out])
    printed = capsys.readouterr().out
    events = read_scalars(tb_run)
    loss = [v for _, v in events['loss']]
    assert f'loss: 2 points, last {loss[-1]:.4f} at step 2, best {min(loss):.4f}' in printed
    assert f'mIoU: 1 points, last {events["mIoU"][0][1]:.4f} at step 2' in printed
    assert out.stat().st_size > 1000


def _records():
    # finishing order differs from id order: 2 ends first
    return [
        dict(
            id=0,
            status='done',
            score=40.0,
            round=0,
            ended_at=20.0,
            metrics={
                'mIoU': 40.0,
                'IoU.road': 10.0
            },
            measures={'params': 7.1e6}),
        dict(id=1, status='failed', score=None, round=0, ended_at=30.0, cause='boom'),
        dict(
            id=2,
            status='done',
            score=55.5,
            round=0,
            ended_at=10.0,
            metrics={
                'mIoU': 55.5,
                'IoU.road': 30.0,
                'note': 'text'
            }),
        dict(id=3, status='running', round=1, started_at=40.0),
    ]


def test_search_scalars_to_a_log_dir_read_back(tmp_path):
    from seg101_mm.search.visualization import write_search_scalars
    assert write_search_scalars(tmp_path, _records()) == 3
    s = read_scalars(tmp_path)
    assert s['search/score'] == [(1, 55.5), (2, 40.0)]
    assert s['search/best_score'] == [(1, 55.5), (2, 55.5), (3, 55.5)]
    assert s['search/failed'] == [(1, 0.0), (2, 0.0), (3, 1.0)]
    assert s['candidate/IoU.road'] == [(1, 30.0), (2, 10.0)]
    assert s['measure/params'] == [(2, pytest.approx(7.1e6))]
    assert 'candidate/note' not in s  # only numbers


def test_search_scalars_written_incrementally_through_a_visualizer(tmp_path):
    from mmengine.visualization import Visualizer

    from seg101_mm.search.visualization import write_search_scalars
    visualizer = Visualizer(
        name='search_scalars_test',
        save_dir=str(tmp_path),
        vis_backends=[dict(type='LocalVisBackend'),
                      dict(type='TensorboardVisBackend')])
    records = _records()
    written = write_search_scalars(visualizer, records[:2])  # 0 and 1 finished
    assert written == 2
    records[3].update(status='done', score=70.0, ended_at=50.0)
    written = write_search_scalars(visualizer, records, start=written)
    visualizer.close()
    assert written == 4
    s = read_scalars(tmp_path / 'vis_data')
    # the first call saw 0 (step 1) and 1 (step 2); the second only adds 2 and 3, whose
    # finishing order puts 2 first: steps are never written twice
    assert [step for step, _ in s['search/best_score']] == [1, 2, 3, 4]
    assert [v for _, v in s['search/best_score']] == [40.0, 40.0, 55.5, 70.0]
    local = [
        json.loads(line)
        for line in (tmp_path / 'vis_data' / 'scalars.json').read_text().splitlines()
    ]
    assert [entry['step'] for entry in local] == [1, 2, 3, 4]


def test_search_scalars_bad_target_and_start():
    from seg101_mm.search.visualization import write_search_scalars
    with pytest.raises(TypeError, match='Visualizer or a log folder path, got int'):
        write_search_scalars(3, _records())
    with pytest.raises(ValueError, match='start must be >= 0.*got -1'):
        write_search_scalars('x', _records(), start=-1)
