"""bench/bench_train_step.py: side-by-side seconds per training iteration of training configs."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SEG101 = 'configs/seg101/seg101_regnetx400mf_1xb4-cpu-2k_whu-building-256x256.py'
PSPNET = 'configs/pspnet/pspnet_r50-d8_1xb4-cpu-2k_whu-building-256x256.py'


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('bench_train_step',
                                                  REPO / 'bench' / 'bench_train_step.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_are_the_protocol_configs_of_the_dataset(bench):
    args = bench.parse_args(['--dataset', 'whu-building'])
    names = [Path(c).name for c in args.configs]
    assert names == [
        'seg101_regnetx400mf_1xb4-cpu-2k_whu-building-256x256.py',
        'deeplabv3plus_r50-d8_1xb4-cpu-2k_whu-building-256x256.py',
        'pspnet_r50-d8_1xb4-cpu-2k_whu-building-256x256.py'
    ]
    assert all(Path(c).is_file() for c in args.configs)


@pytest.mark.parametrize('argv, message', [
    (['--rounds', '0'], '--rounds must be >= 1, got 0'),
    (['--warmup', '-1'], '--warmup must be >= 0, got -1'),
    (['no/such_config.py'], "config 'no/such_config.py' is not a file"),
])
def test_bad_arguments_are_one_error_line(bench, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_synthetic_batch_is_a_packed_batch_with_target_and_ignore(bench):
    batch = bench.synthetic_batch(3, 64)
    assert len(batch['inputs']) == 3 and batch['inputs'][0].shape == (3, 64, 64)
    assert batch['inputs'][0].dtype == torch.uint8
    label = batch['data_samples'][0].gt_sem_seg.data
    assert label.shape == (1, 64, 64)
    assert set(label.unique().tolist()) == {0, 1, 255}
    share = (label == 1).float().mean().item()
    assert 0.02 < share < 0.2


def test_the_config_trains_as_configured_and_ratios_refer_to_the_first(bench, tmp_path, capsys):
    out = tmp_path / 'steps.json'
    rows, table = bench.main([
        str(REPO / SEG101),
        str(REPO / PSPNET), '--rounds', '2', '--warmup', '0', '--batch-size', '2', '--crop',
        '32', '--threads', '1', '--out-json',
        str(out), '--out-csv',
        str(tmp_path / 'steps.csv')
    ])
    assert [r['config'] for r in rows] == [SEG101, PSPNET]
    assert rows[0]['ratio'] == 1.0
    for row in rows:
        assert len(row['step_runs']) == 2 and row['s_per_iter'] > 0
        assert row['ratio'] == pytest.approx(row['s_per_iter'] / rows[0]['s_per_iter'])
        assert (row['batch_size'], row['crop']) == (2, 32)
    # PSPNet R50-D8 (with its auxiliary head) is several times SEG101's size
    assert rows[1]['params'] > 4 * rows[0]['params']
    # the optimiser is the config's own: AdamW with no decay on normalisation layers
    model, optim_wrapper, batch_size, crop = bench.build_trainee(str(REPO / SEG101))
    assert type(optim_wrapper.optimizer).__name__ == 'AdamW'
    assert (batch_size, crop) == (4, 256)
    assert any(g['weight_decay'] == 0.0 for g in optim_wrapper.optimizer.param_groups)
    saved = json.loads(out.read_text())
    assert saved['table'] == table and len(saved['rows']) == 2
    assert (tmp_path / 'steps.csv').read_text().splitlines()[0].startswith(
        'config,precision,params,')
    printed = capsys.readouterr().out
    assert 'seg101_regnetx400mf_1xb4-cpu-2k_whu-building-256x256.py | fp32 | 7.' in printed


def test_precisions_time_each_config_in_float32_and_bfloat16(bench):
    rows, table = bench.main([
        str(REPO / SEG101), '--rounds', '1', '--warmup', '0', '--batch-size', '2', '--crop',
        '32', '--threads', '1', '--precisions', 'fp32', 'bf16'
    ])
    assert [(r['config'], r['precision']) for r in rows] == [(SEG101, 'fp32'), (SEG101, 'bf16')]
    assert rows[1]['ratio'] == pytest.approx(rows[1]['s_per_iter'] / rows[0]['s_per_iter'])
    assert '| bf16 |' in table
    model, optim_wrapper, *_ = bench.build_trainee(str(REPO / SEG101), 2, 32, 'bf16')
    assert type(optim_wrapper).__name__ == 'CPUAmpOptimWrapper'
    assert optim_wrapper.cast_dtype == torch.bfloat16
