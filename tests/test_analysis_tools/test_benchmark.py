import json

import pytest
import torch
from analysis_helpers import data_options, run_script, script_error

from seg101_mm.tools.benchmark import benchmark, fixed_size_batches, time_predict
from seg101_mm.tools.common import ToolError, build_inference_model, load_config


class _CountingModel(torch.nn.Module):
    """Stands in for a segmentor: counts predict calls, preprocessor passes data through."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.data_preprocessor = lambda data, training: dict(data)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls.append((len(inputs), mode))


class _Clock:
    """Each predict step takes ``step`` seconds: consecutive calls alternate start/end."""

    def __init__(self, step):
        self.t, self.step, self.n = 0.0, step, 0

    def __call__(self):
        self.n += 1
        if self.n % 2 == 0:
            self.t += self.step
        return self.t


def test_time_predict_counts_only_timed_steps_and_images():
    model, lines = _CountingModel(), []
    batches = fixed_size_batches((8, 8), batch_size=2)
    out = time_predict(
        model,
        batches,
        num_iters=4,
        warmup=3,
        log_interval=2,
        clock=_Clock(0.25),
        log=lines.append)
    assert model.calls == [(2, 'predict')] * 7  # warmup steps run too
    assert out['images'] == 8 and out['seconds'] == pytest.approx(1.0)
    assert out['fps'] == pytest.approx(8.0)  # 2 images per 0.25 s step
    assert out['latency_ms']['median'] == pytest.approx(125.0)  # per image, not per batch
    assert lines == [
        'Done image [4  / 8], fps: 8.00 img / s', 'Done image [8  / 8], fps: 8.00 img / s'
    ]


def test_benchmark_repeats_summarise_like_mmseg():
    steps = iter([0.5, 0.25])

    class Clock(_Clock):

        def __call__(self):
            if self.n % 2 == 0:
                self.step = next(steps)
            return super().__call__()

    out = benchmark(
        _CountingModel(),
        lambda: fixed_size_batches((8, 8)),
        num_iters=1,
        warmup=0,
        repeat_times=2,
        clock=Clock(0),
        log=None)
    assert (out['overall_fps_1'], out['overall_fps_2']) == (2.0, 4.0)
    assert out['average_fps'] == 3.0 and out['fps_variance'] == 1.0
    assert len(out['runs']) == 2


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_iters=0), '--num-iters must be >= 1, got 0'),
    (dict(warmup=-1), '--warmup must be >= 0, got -1'),
    (dict(log_interval=0), '--log-interval must be >= 1, got 0'),
])
def test_time_predict_rejects_bad_counts(kwargs, message):
    with pytest.raises(ToolError, match=message):
        time_predict(_CountingModel(), fixed_size_batches((8, 8)), log=None, **kwargs)


def test_benchmark_on_a_repository_config_cycles_its_test_split(seg101_config, roads, tmp_path,
                                                                capsys):
    # 3 test images, 2 + 5 steps: the dataloader is cycled, not cut short as in mmseg's tool
    out = run_script('benchmark', [
        seg101_config, '--device', 'cpu', '--num-iters', 5, '--warmup', 2, '--log-interval', 5,
        '--work-dir', tmp_path
    ], data_options(roads))
    printed = capsys.readouterr().out
    assert 'Done image [5  / 5]' in printed and 'Average fps of 1 evaluations' in printed
    (path, ) = tmp_path.glob('fps_*.json')
    saved = json.loads(path.read_text())
    assert saved['runs'][0]['images'] == 5 and saved['input'] == 'test dataloader'
    assert saved['average_fps'] == out['average_fps'] > 0
    lat = saved['runs'][0]['latency_ms']
    assert 0 < lat['min'] <= lat['median'] <= lat['p90'] <= lat['max']
    assert saved['runs'][0]['fps'] == pytest.approx(1e3 * 5 / sum([lat['mean']] * 5))


def test_benchmark_fixed_shape_batches_and_repeats(seg101_config, tmp_path):
    out = run_script('benchmark', [
        seg101_config, '--device', 'cpu', '--shape', 64, 96, '--batch-size', 2, '--num-iters', 2,
        '--warmup', 0, '--repeat-times', 2, '--work-dir', tmp_path
    ])
    assert [r['images'] for r in out['runs']] == [4, 4]
    assert out['input'] == 'random 64x96 images' and out['batch_size'] == 2
    assert set(out) >= {'overall_fps_1', 'overall_fps_2', 'average_fps', 'fps_variance'}


def test_checkpoint_weights_are_loaded(seg101_config, tmp_path):
    from mmengine.runner.checkpoint import save_checkpoint
    cfg = load_config(seg101_config)
    model = build_inference_model(cfg)
    name, param = next(iter(model.decode_head.named_parameters()))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state[f'decode_head.{name}'].fill_(0.125)
    ckpt = tmp_path / 'iter_1.pth'
    save_checkpoint(dict(state_dict=state, meta=dict(iter=1)), str(ckpt))
    loaded = build_inference_model(cfg, str(ckpt))
    assert torch.all(dict(loaded.decode_head.named_parameters())[name] == 0.125)
    assert not loaded.training


def test_bad_input_gives_one_error_line(seg101_config, tmp_path, capsys):
    line = script_error('benchmark',
                        [seg101_config, '--num-iters', 0, '--device', 'cpu', '--shape', 64],
                        capsys)
    assert line.endswith('error: --num-iters must be >= 1, got 0')
    line = script_error('benchmark', [seg101_config, tmp_path / 'nope.pth', '--device', 'cpu'],
                        capsys)
    assert 'nope.pth' in line and 'does not exist' in line
    line = script_error('benchmark', [tmp_path / 'missing.py'], capsys)
    assert 'missing.py' in line and 'expected an mmseg config' in line
    line = script_error('benchmark', [seg101_config, '--device', 'tpu'], capsys)
    assert "--device 'tpu': expected 'cpu', 'cuda' or 'cuda:N'" in line
    if not torch.cuda.is_available():
        line = script_error('benchmark', [seg101_config, '--device', 'cuda'], capsys)
        assert 'no CUDA device is available' in line
