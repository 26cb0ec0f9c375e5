"""What a search must survive: kills at any moment (the config dump window included), a
second search on its work dir, hostile ledger text, a changed dataset, signals, and bad
configs, which end with one ``error:`` line before anything is written."""
import csv
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seg101_mm.search.errors import SearchConfigError, SearchStopped, WorkDirBusy
from seg101_mm.search.launchers import job_processes
from seg101_mm.search.ledger import Ledger
from seg101_mm.search.loop import NPENASSearchLoop
from seg101_mm.search.strategy import build_strategy

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def search_tool():
    from seg101_mm.tools import search as tool
    return tool


def search(argv):
    search_tool().main(argv)


def ledger(work_dir):
    return Ledger(Path(work_dir) / 'ledger.jsonl', readonly=True).records()


def gone(pid):
    """True when ``pid`` has ended (a zombie waiting for its parent counts as ended)."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def wait_for(check, limit=60.0):
    end = time.time() + limit
    while time.time() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def _run_child(argv, env):
    os.environ.update(env)
    search(argv)


def fork_search(cfg, wd, **env):
    """A search in a forked process (no interpreter start-up): it can be killed at any point."""
    proc = multiprocessing.get_context('fork').Process(
        target=_run_child, args=([cfg, '--work-dir', str(wd)], env), daemon=True)
    proc.start()
    return proc


def start_search(repo_root, cfg, wd, **env):
    return subprocess.Popen(
        [sys.executable, str(TOOLS / 'search.py'), cfg, '--work-dir',
         str(wd)],
        env=dict(os.environ, **env),
        cwd=str(repo_root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)


def essence(recs):
    return [(r['id'], r['key'], r['round'], r['status'], r['score']) for r in recs]


def fake_launcher(fake_script, n=1):
    return dict(type='LocalLauncher', gpus=[], max_concurrent=n, script=fake_script)


# ---------------------------------------------------------------------- kills and resume
def test_kill_in_the_config_dump_window(tmp_path, repo_root, search_config, fake_script):
    # Candidate 1's job is held at start-up inside mmengine's rewrite of the config copy in
    # its work dir (opened with 'w', still empty) when the search is killed.
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script, 2), budget=2, num_init=2)
    wd = tmp_path / 'wd'
    proc = fork_search(cfg, wd, FAKE_BEHAVIOUR=json.dumps({'1': 'hang_in_dump'}))
    in_dump = wd / 'candidates' / '0001' / 'in_dump'
    assert wait_for(in_dump.exists)
    proc.kill()
    proc.join()
    config = wd / 'configs' / 'candidate_0001.py'
    assert (wd / 'candidates' / '0001' / config.name).read_text() == ''  # the dumped copy
    assert "genotype = '" in config.read_text()  # the search's own copy is whole
    search([cfg, '--work-dir', str(wd), '--resume'])
    recs = ledger(wd)
    assert [r['status'] for r in recs] == ['done', 'done'], [r.get('cause') for r in recs]
    assert recs[1]['attempts'] == 2 and recs[1]['config'] == str(config)
    # the orphan was ended on resume
    assert job_processes(None, match=(str(config), str(wd / 'candidates' / '0001'))) == {}


def test_random_kills_resume_to_the_uninterrupted_search(tmp_path, repo_root, search_config,
                                                         fake_script, monkeypatch):
    cfg = search_config(
        tmp_path / 's.py', fake_launcher(fake_script, 2), budget=4, num_init=2, top_k=2, seed=5)
    monkeypatch.setenv('FAKE_SLEEP', '0.1')
    search([cfg, '--work-dir', str(tmp_path / 'straight')])
    straight = essence(ledger(tmp_path / 'straight'))
    assert len(straight) == 4 and all(s[3] == 'done' for s in straight)
    for seed in range(3):
        wd = tmp_path / f'killed{seed}'
        proc = fork_search(cfg, wd)
        assert wait_for((wd / 'ledger.jsonl').exists)
        time.sleep(random.Random(seed).uniform(0.0, 1.5))  # a kill anywhere in the search
        proc.kill()
        proc.join()
        search([cfg, '--work-dir', str(wd), '--resume'])
        assert essence(ledger(wd)) == straight, f'kill seed {seed}'


def propose_by_hand(wd, budget, n, fields=None):
    """Ledger of a search (as the loop writes it) whose first ``n`` candidates are proposed."""
    strategy = build_strategy(
        dict(type='NPENASNP', num_init=n, top_k=2, num_candidates=20, predictor=dict(epochs=30)),
        budget=budget,
        seed=0)
    genotypes = strategy.ask(n)
    led = Ledger(Path(wd) / 'ledger.jsonl', fsync=False)
    fields = fields or {}
    led.propose([
        dict(id=i, genotype=str(g), key=g.key, round=0, seed=0, **fields.get(i, {}))
        for i, g in enumerate(genotypes)
    ], strategy.state_dict())
    return led


def test_resume_never_uses_ledger_paths(tmp_path, search_config, fake_script):
    wd = tmp_path / 'wd'
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.py'
    elsewhere = tmp_path / 'elsewhere'
    led = propose_by_hand(
        wd, 1, 1,
        {0: dict(config=str(evil), work_dir=str(elsewhere), log=str(elsewhere / 'x.log'))})
    genotype = led.records()[0]['genotype']
    led.close()
    evil.write_text(f'open({str(marker)!r}, "w").write("ran")\ngenotype = {genotype!r}\n')
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script), budget=1, num_init=1)
    search([cfg, '--work-dir', str(wd), '--resume'])
    rec = ledger(wd)[0]
    derived = wd / 'configs' / 'candidate_0000.py'
    assert rec['status'] == 'done' and rec['attempts'] == 1
    assert (rec['config'], rec['work_dir']) == (str(derived), str(wd / 'candidates' / '0000'))
    result = json.loads((wd / 'candidates' / '0000' / 'result.json').read_text())
    assert result['env']['argv'][0] == str(derived)  # trained from the re-rendered config
    assert not elsewhere.exists() and not marker.exists()


def test_end_time_of_a_job_that_finished_while_the_search_was_down(tmp_path, search_config,
                                                                   fake_script):
    wd = tmp_path / 'wd'
    started = time.time() - 100
    led = propose_by_hand(wd, 1, 1)
    led.update(0, status='running', started_at=started, attempts=1, pid=None)
    led.close()
    cdir = wd / 'candidates' / '0000'
    cdir.mkdir(parents=True)
    (cdir / 'result.json').write_text(json.dumps(dict(status='done', metrics={'mIoU': 50.0})))
    os.utime(cdir / 'result.json', (started + 7.0, started + 7.0))
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script), budget=1, num_init=1)
    search([cfg, '--work-dir', str(wd), '--resume'])
    rec = ledger(wd)[0]
    assert rec['status'] == 'done' and rec['score'] == 50.0 and rec['attempts'] == 1
    assert rec['ended_at'] == pytest.approx(started + 7.0, abs=1e-3)
    with open(wd / 'leaderboard.csv', newline='') as fh:
        assert next(csv.DictReader(fh))['train_s'] == '7.0'


# ---------------------------------------------------------------------- one search per dir
def test_second_search_on_a_running_search_is_refused(tmp_path, repo_root, search_config,
                                                      fake_script, capsys):
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script), budget=1, num_init=1)
    wd = tmp_path / 'wd'
    first = fork_search(cfg, wd, FAKE_BEHAVIOUR=json.dumps({'0': 'hang'}))
    try:
        assert wait_for(lambda:
                        (wd / 'ledger.jsonl').exists() and ledger(wd) and ledger(wd)[0].get('pid'))
        job = ledger(wd)[0]['pid']
        before = sorted(p.name for p in wd.iterdir()), (wd / 'ledger.jsonl').read_bytes()
        tool = search_tool()
        for extra in (['--resume'], []):
            assert tool.cli([cfg, '--work-dir', str(wd)] + extra) == 1
            err = capsys.readouterr().err
            assert err == (f'error: {wd} is in use by another search (pid {first.pid}); wait '
                           f'for it to end, or stop it, before starting or resuming a search '
                           f'there\n')
        with pytest.raises(WorkDirBusy, match=f'pid {first.pid}'):
            search([cfg, '--work-dir', str(wd), '--resume'])
        assert not gone(job) and first.is_alive()  # the first search runs on, untouched
        assert (sorted(p.name for p in wd.iterdir()), (wd / 'ledger.jsonl').read_bytes()) \
            == before
    finally:
        first.terminate()
        first.join(60)
    assert gone(job)


# ---------------------------------------------------------------------- reports and causes
def test_reports_after_every_round(tmp_path, search_config, fake_script, monkeypatch):
    seen = {}
    launch = NPENASSearchLoop._launch

    def spy(loop, rec):
        if rec['round'] not in seen:  # the first start of a round: the last one is reported
            board = loop.work_dir / 'leaderboard.csv'
            best = loop.work_dir / 'best.json'
            seen[rec['round']] = (board.read_text().splitlines() if board.exists() else None,
                                  json.loads(best.read_text()) if best.exists() else None)
        return launch(loop, rec)

    monkeypatch.setattr(NPENASSearchLoop, '_launch', spy)
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script), budget=4, num_init=2)
    wd = tmp_path / 'wd'
    search([cfg, '--work-dir', str(wd)])
    recs = ledger(wd)
    assert seen[0] == (None, None)
    rows, best = seen[1]
    assert len(rows) == 3 and {r['id'] for r in csv.DictReader(rows)} == {'0', '1'}
    top = max(recs[:2], key=lambda r: r['score'])
    assert best['id'] == top['id'] and best['score'] == top['score']
    assert best['score_metric'] == 'mIoU' and best['metrics']['mIoU'] == top['score']
    assert len((wd / 'leaderboard.csv').read_text().splitlines()) == 5


def test_max_failures_stop_names_causes_and_logs_and_reports(tmp_path, search_config, fake_script,
                                                             monkeypatch):
    monkeypatch.setenv('FAKE_BEHAVIOUR', json.dumps({'0': 'no_data', '1': 'no_data'}))
    cfg = search_config(
        tmp_path / 's.py', fake_launcher(fake_script, 2), budget=4, num_init=2, max_failures=2)
    wd = tmp_path / 'wd'
    with pytest.raises(SearchStopped, match=r'2 candidates failed \(max_failures=2\)') as e:
        search([cfg, '--work-dir', str(wd)])
    recs = ledger(wd)
    for r in recs:
        missing = Path(r['work_dir']) / 'missing' / 'img_dir' / 'train'
        cause = (f"crashed: exit code 1: FileNotFoundError: [Errno 2] No such file or "
                 f"directory: '{missing}'")
        assert r['status'] == 'failed' and r['cause'] == cause
        assert f'candidate {r["id"]}: {cause} (log: {r["log"]})' in str(e.value)
    board = (wd / 'leaderboard.csv').read_text()  # written on the stop too
    assert 'FileNotFoundError' in board and recs[0]['log'] in board


# ---------------------------------------------------------------------- signals
def spawn_hang_search(tmp_path, search_config, fake_script):
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script, 2), budget=2, num_init=2)
    wd = tmp_path / 'wd'
    pid_files = [wd / 'candidates' / f'{i:04d}' / 'worker.pid' for i in range(2)]
    return cfg, wd, pid_files


def running_processes(wd, pid_files):
    """Pids of the two jobs and their torchrun-like workers, once all four run."""
    assert wait_for(lambda: all(p.exists() and p.read_text() for p in pid_files))
    return [r['pid'] for r in ledger(wd)] + [int(p.read_text()) for p in pid_files]


def test_sigterm_ends_jobs_with_their_workers_and_requeues_them(tmp_path, repo_root, search_config,
                                                                fake_script):
    cfg, wd, pid_files = spawn_hang_search(tmp_path, search_config, fake_script)
    proc = start_search(
        repo_root, cfg, wd, FAKE_BEHAVIOUR=json.dumps({
            '0': 'spawn_hang',
            '1': 'spawn_hang'
        }))
    try:
        pids = running_processes(wd, pid_files)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 128 + signal.SIGTERM and 'Traceback' not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        'error: search stopped by SIGTERM: its running candidates are ended and queued again; '
        'continue it with --resume')
    assert wait_for(lambda: all(gone(p) for p in pids), 5), 'processes left'
    assert [(r['status'], r['attempts']) for r in ledger(wd)] == [('queued', 1)] * 2


def test_ctrl_c_ends_jobs_with_their_workers_and_resume_trains_them(tmp_path, search_config,
                                                                    fake_script, monkeypatch):
    cfg, wd, pid_files = spawn_hang_search(tmp_path, search_config, fake_script)
    monkeypatch.setenv('FAKE_BEHAVIOUR', json.dumps({'0': 'spawn_hang', '1': 'spawn_hang'}))
    pids = []

    def interrupt():
        try:
            pids.extend(running_processes(wd, pid_files))
        finally:  # the search must stop even if the check failed
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(SearchStopped, match='stopped by SIGINT') as e:
        search([cfg, '--work-dir', str(wd)])
    assert e.value.exit_code == 128 + signal.SIGINT
    assert len(pids) == 4 and wait_for(lambda: all(gone(p) for p in pids), 5)
    assert [(r['status'], r['attempts']) for r in ledger(wd)] == [('queued', 1)] * 2
    monkeypatch.delenv('FAKE_BEHAVIOUR')
    search([cfg, '--work-dir', str(wd), '--resume'])
    assert [(r['status'], r['attempts']) for r in ledger(wd)] == [('done', 2)] * 2


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize('option, message', [
    ('train_cfg.budget=-3', 'train_cfg.budget=-3 is not allowed; expected a positive int'),
    ('train_cfg.max_failures=0', 'train_cfg.max_failures=0 is not allowed; expected a '
     'positive int'),
    ('train_cfg.candidate.iters=-5', 'train_cfg.candidate.iters=-5 is not allowed; expected '
     'None or a positive int'),
    ('train_cfg.strategy.type=NPENAS', "train_cfg.strategy.type='NPENAS' is not allowed; "
     "expected one of ['NPENASBO', 'NPENASNP', 'RandomSearch']"),
    ('train_cfg.launcher.type=ssh', "train_cfg.launcher.type='ssh' is not allowed; expected "
     "one of ['InProcessLauncher', 'LocalLauncher', 'SlurmLauncher']"),
    ('train_cfg.strategy.type=mmdet.RandomSearch', "train_cfg.strategy.type="
     "'mmdet.RandomSearch' is not allowed; expected one of ['NPENASBO', 'NPENASNP', "
     "'RandomSearch']"),
    ('train_cfg.launcher.type=mmseg.ssh', "train_cfg.launcher.type='mmseg.ssh' is not allowed; "
     "expected one of ['InProcessLauncher', 'LocalLauncher', 'SlurmLauncher'] or "
     "['inprocess', 'local', 'slurm']"),
    ('train_cfg.launcher.colour=red', 'train_cfg.launcher.colour is not an option of '
     "LocalLauncher; expected some of ['gpus', 'gpus_per_candidate', 'max_concurrent'"),
    ('train_cfg.launcher.max_concurrent=0', 'max_concurrent must be a positive int, got 0'),
    ('train_cfg.candidate.template=/no/such/template.py',
     "train_cfg.candidate.template='/no/such/template.py' does not exist; expected the path "
     "of a config file"),
    ('train_cfg.candidate.data_root=/no/such/dataset',
     "train_cfg.candidate.data_root='/no/such/dataset' does not exist"),
])
def test_bad_search_config_is_one_error_line_and_writes_nothing(tmp_path, search_config,
                                                                fake_script, capsys, option,
                                                                message):
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script))
    tool = search_tool()
    wd = tmp_path / 'new'
    assert tool.cli([cfg, '--work-dir', str(wd), '--cfg-options', option]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and message in err, err
    assert not wd.exists()  # no data/, no logs, no dumped config
    old = tmp_path / 'old'  # a resume with a bad value leaves the saved files as they were
    old.mkdir()
    (old / 's.py').write_text('saved')
    assert tool.cli([cfg, '--work-dir', str(old), '--resume', '--cfg-options', option]) == 2
    assert message in capsys.readouterr().err
    assert [(p.name, p.read_text()) for p in old.iterdir()] == [('s.py', 'saved')]


def test_bad_config_from_the_command_line_prints_no_traceback(tmp_path, repo_root, search_config,
                                                              fake_script):
    cfg = search_config(tmp_path / 's.py', fake_launcher(fake_script), budget=-3)
    wd = tmp_path / 'wd'
    out = subprocess.run(
        [sys.executable, str(TOOLS / 'search.py'), cfg, '--work-dir',
         str(wd)],
        cwd=str(repo_root),
        capture_output=True,
        text=True)
    assert out.returncode == 2 and out.stderr == (
        'error: train_cfg.budget=-3 is not allowed; expected a positive int (candidates to '
        'train)\n')
    assert not wd.exists()


def test_resume_on_another_dataset_is_refused(tmp_path, search_config, fake_script, capsys):
    roads, other = tmp_path / 'roads', tmp_path / 'other'
    roads.mkdir()
    other.mkdir()
    wd = tmp_path / 'wd'
    cfg = search_config(
        tmp_path / 's.py', fake_launcher(fake_script), budget=1, num_init=1, data_root=str(roads))
    search([cfg, '--work-dir', str(wd)])
    assert Ledger(
        wd / 'ledger.jsonl', readonly=True).setup == dict(
            dataset=dict(data_root=str(roads), synthetic=None), score='mIoU')
    before = (wd / 'ledger.jsonl').read_bytes()
    listing = sorted(p.name for p in wd.iterdir())
    tool = search_tool()
    assert tool.cli([cfg, '--work-dir', str(wd)]) == 1  # no --resume: refused, untouched
    assert capsys.readouterr().err == (f"error: {wd / 'ledger.jsonl'} already holds a search; "
                                       f"continue it with --resume or choose another "
                                       f"--work-dir\n")
    assert sorted(p.name for p in wd.iterdir()) == listing
    for root in (other, None):  # another folder, or generated scenes instead
        option = f'train_cfg.candidate.data_root={root}' if root else \
            'train_cfg.candidate.data_root=None'
        assert tool.cli([
            cfg, '--work-dir',
            str(wd), '--resume', '--cfg-options', 'train_cfg.budget=2', option
        ]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: train_cfg.candidate: this search trained its "
                              f"candidates on data_root='{roads}', not on ") and \
            'would mix two datasets' in err, err
    with pytest.raises(SearchConfigError, match='would mix two datasets'):
        search([
            cfg, '--work-dir',
            str(wd), '--resume', '--cfg-options', f'train_cfg.candidate.data_root={other}',
            'train_cfg.budget=2'
        ])
    assert (wd / 'ledger.jsonl').read_bytes() == before and not (wd / 'data').exists()
    search([cfg, '--work-dir', str(wd), '--resume', '--cfg-options', 'train_cfg.budget=2'])
    recs = ledger(wd)
    assert [r['status'] for r in recs] == ['done', 'done']
    for r in recs:
        text = Path(r['config']).read_text()
        assert f"data_root='{roads}'" in text and str(other) not in text
