"""The search loop through tools/search.py: in-process training, real dist_train.sh jobs,
failure injection, max_failures, and resume after kill -9."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mmengine.config import Config

from seg101_mm.search.ledger import Ledger


def search(argv):
    from seg101_mm.tools import search as search_tool
    search_tool.main(argv)


def ledger(work_dir):
    return Ledger(Path(work_dir) / 'ledger.jsonl').records()


def test_inprocess_search_trains_real_candidates(tmp_path, search_config):
    cfg = search_config(
        tmp_path / 'search.py',
        dict(type='InProcessLauncher'),
        budget=2,
        num_init=1,
        top_k=1,
        iters=1,
        measure=dict(names=['params', 'flops'], input_size=(64, 64)))
    wd = tmp_path / 'wd'
    search([cfg, '--work-dir', str(wd)])
    recs = ledger(wd)
    assert [r['status'] for r in recs] == ['done'] * 2, [r.get('cause') for r in recs]
    assert [r['round'] for r in recs] == [0, 1]
    assert len({r['key'] for r in recs}) == 2
    for r in recs:
        assert 0 <= r['score'] <= 100 and r['metrics']['mIoU'] == r['score']
        assert {'IoU.road', 'FWIoU', 'PA', 'MPA'} <= set(r['metrics'])
        cand = Config.fromfile(r['config'])
        assert cand.model.neck.genotype == r['key'] and cand.train_cfg.max_iters == 1
        assert cand.train_dataloader.dataset.data_root == str((wd / 'data').resolve())
        # measured on the built network: RegNetX-400MF alone has 4.77 M parameters
        assert 4.77e6 < r['measures']['params'] < 1e8 and r['measures']['flops'] > 1e7
    rows = (wd / 'leaderboard.csv').read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith('1,')
    assert str(recs[0]['measures']['params']) in '\n'.join(rows)
    best = max(recs, key=lambda r: r['score'])
    info = json.loads((wd / 'best.json').read_text())
    assert info['key'] == best['key']
    full = Config.fromfile(info['config'])
    assert full.model.decode_head.genotype == best['key']
    assert full.train_cfg.max_iters == 201900  # the 100-epoch recipe
    for png in ('top10_per_round.png', 'miou_hist.png', 'best_so_far.png'):
        assert (wd / 'plots' / png).stat().st_size > 1000
    with pytest.raises(FileExistsError, match='--resume'):
        search([cfg, '--work-dir', str(wd)])


def test_search_writes_one_scalar_point_per_candidate(tmp_path, search_config):
    # Scoped registry names for the strategy and the launcher, as any other config key takes.
    cfg = search_config(
        tmp_path / 'search.py',
        dict(type='mmseg.inprocess'),
        budget=2,
        num_init=1,
        top_k=1,
        iters=1,
        strategy='mmseg.NPENASNP')
    with open(cfg, 'a') as fh:
        fh.write("visualizer = dict(type='Visualizer',\n"
                 "                  vis_backends=[dict(type='LocalVisBackend')])\n")
    wd = tmp_path / 'wd'
    search([cfg, '--work-dir', str(wd)])
    recs = ledger(wd)
    assert [r['status'] for r in recs] == ['done'] * 2, [r.get('cause') for r in recs]
    files = list(wd.glob('*/vis_data/scalars.json'))  # <work_dir>/<timestamp>/vis_data
    assert len(files) == 1, files
    points = [json.loads(line) for line in files[0].read_text().splitlines()]
    finished = sorted(recs, key=lambda r: (r['ended_at'], r['id']))
    assert [p['step'] for p in points] == [1, 2]
    assert [p['search/score'] for p in points] == [r['score'] for r in finished]
    assert points[1]['search/best_score'] == max(r['score'] for r in recs)
    assert [p['search/round'] for p in points] == [0, 1]
    assert points[0]['candidate/mIoU'] == finished[0]['metrics']['mIoU']


def test_real_dist_train_jobs(tmp_path, search_config):
    launcher = dict(type='LocalLauncher', gpus=[], gpus_per_candidate=1, max_concurrent=1)
    cfg = search_config(tmp_path / 'search.py', launcher, budget=1, num_init=1, iters=1, poll=0.2)
    wd = tmp_path / 'wd'
    search([cfg, '--work-dir', str(wd)])
    recs = ledger(wd)
    assert [r['status'] for r in recs] == ['done'], [r.get('cause') for r in recs]
    for r in recs:
        log = Path(r['log']).read_text()
        assert 'torch.distributed.run' in log or 'gloo' in log
        assert json.loads((Path(r['work_dir']) / 'result.json').read_text())['iter'] == 1
        assert r['pid'] > 0 and r['attempts'] == 1


def test_failures_are_recorded_and_max_failures_stops(tmp_path, search_config, fake_script,
                                                      monkeypatch):
    monkeypatch.setenv('FAKE_BEHAVIOUR', json.dumps({'1': 'raise', '2': 'nan', '3': 'hang'}))
    launcher = dict(type='LocalLauncher', gpus=[], max_concurrent=4, script=fake_script)
    cfg = search_config(
        tmp_path / 's.py', launcher, budget=6, num_init=4, top_k=2, timeout=3, max_failures=10)
    wd = tmp_path / 'wd'
    search([cfg, '--work-dir', str(wd)])
    recs = ledger(wd)
    assert [r['status'] for r in recs] == ['done', 'failed', 'failed', 'failed', 'done', 'done']
    assert 'ZeroDivisionError: injected failure' in recs[1]['cause']
    assert recs[2]['cause'] == 'non-finite loss (nan) at iteration 1'
    assert recs[3]['cause'] == 'timeout: killed after 3 s'
    assert all(Path(r['log']).exists() for r in recs[1:4])
    assert recs[4]['round'] == 1  # the search went on after the failures
    board = (wd / 'leaderboard.csv').read_text()
    assert 'timeout: killed after 3 s' in board

    cfg = search_config(
        tmp_path / 's2.py', launcher, budget=6, num_init=4, top_k=2, timeout=3, max_failures=2)
    with pytest.raises(RuntimeError, match=r'2 candidates failed \(max_failures=2\)'):
        search([cfg, '--work-dir', str(tmp_path / 'wd2')])


def test_resume_after_kill_9(tmp_path, repo_root, search_config, fake_script):
    launcher = dict(type='LocalLauncher', gpus=[], max_concurrent=1, script=fake_script)
    cfg = search_config(tmp_path / 's.py', launcher, budget=6, num_init=3, top_k=3, seed=3)
    env = dict(os.environ, FAKE_SLEEP='1.0')
    wd = tmp_path / 'killed'
    proc = subprocess.Popen(
        [sys.executable,
         str(repo_root / 'tools' / 'search.py'), cfg, '--work-dir',
         str(wd)],
        env=env,
        cwd=str(repo_root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    path = wd / 'ledger.jsonl'
    deadline = time.time() + 120
    killed_while = None
    while time.time() < deadline and proc.poll() is None:
        if path.exists():
            recs = Ledger(path).records()
            done = [r for r in recs if r['status'] == 'done']
            running = [r for r in recs if r['status'] == 'running' and r.get('pid')]
            if len(done) >= 3 and running:  # after round 0, while a candidate trains
                os.kill(proc.pid, signal.SIGKILL)
                killed_while = running[0]['id']
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_while is not None, 'the search ended before it could be killed'
    before = {r['id']: r for r in Ledger(path).records()}
    # The orphaned job finishes on its own; a result written after the kill is kept on
    # resume. Remove it to exercise the re-queue of a candidate that was cut off.
    result = Path(before[killed_while]['work_dir']) / 'result.json'
    deadline = time.time() + 30
    while not result.exists() and time.time() < deadline:
        time.sleep(0.05)
    result.unlink()

    os.environ['FAKE_SLEEP'] = '0.2'
    try:
        search([cfg, '--work-dir', str(wd), '--resume'])
        search([cfg, '--work-dir', str(tmp_path / 'straight')])
    finally:
        del os.environ['FAKE_SLEEP']
    resumed = ledger(wd)
    straight = ledger(tmp_path / 'straight')
    for cid, rec in before.items():
        if rec['status'] == 'done':  # never retrained
            assert resumed[cid]['started_at'] == rec['started_at']
            assert resumed[cid]['attempts'] == 1
    assert resumed[killed_while]['attempts'] == 2  # re-queued and trained again
    assert all(r['status'] == 'done' for r in resumed)

    def essence(recs):
        return [(r['id'], r['key'], r['round'], r['status'], r['score']) for r in recs]

    assert essence(resumed) == essence(straight)


def test_search_ranks_by_the_configured_score(tmp_path, search_config, capsys):
    import csv

    from seg101_mm.tools import search as tool
    cfg = search_config(
        tmp_path / 'search.py', dict(type='InProcessLauncher'), budget=2, num_init=2, iters=1)
    wd = tmp_path / 'wd'
    search([cfg, '--work-dir', str(wd), '--cfg-options', 'train_cfg.score=IoU.road'])
    recs = ledger(wd)
    assert [r['status'] for r in recs] == ['done'] * 2, [r.get('cause') for r in recs]
    for r in recs:  # the road IoU ranks, not the mIoU
        assert r['score'] == r['metrics']['IoU.road'] != r['metrics']['mIoU']
    assert Ledger(wd / 'ledger.jsonl', readonly=True).setup['score'] == 'IoU.road'
    with open(wd / 'leaderboard.csv') as fh:
        rows = list(csv.DictReader(fh))
    assert 'mIoU' not in rows[0] and [float(r['IoU.road']) for r in rows] == sorted(
        (r['score'] for r in recs), reverse=True)
    best = json.loads((wd / 'best.json').read_text())
    assert best['score_metric'] == 'IoU.road'
    assert best['score'] == max(r['score'] for r in recs)
    before = (wd / 'ledger.jsonl').read_bytes()
    capsys.readouterr()
    # resuming with another score would mix two rankings: refused, nothing written
    assert tool.cli([cfg, '--work-dir', str(wd), '--resume']) == 2  # a config error
    err = capsys.readouterr().err
    assert err.startswith("error: train_cfg.score='mIoU': this search ranked its candidates by "
                          "'IoU.road'") and err.count('\n') == 1, err
    assert (wd / 'ledger.jsonl').read_bytes() == before
    # a metric the candidates do not report: refused before anything trains
    other = tmp_path / 'typo'
    assert tool.cli([cfg, '--work-dir',
                     str(other), '--cfg-options', 'train_cfg.score=IoU.rood']) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: train_cfg.score='IoU.rood' is not allowed; expected one of the "
                          "val metrics that the candidates report: ['mIoU', 'IoU.background', "
                          "'IoU.road',") and err.count('\n') == 1, err
    assert not other.exists()
