import json

from analysis_helpers import repo_config, run_script, script_error

from seg101_mm.tools.common import build_inference_model, load_config
from seg101_mm.tools.complexity import default_shape, human


def test_get_flops_uses_the_proxies_counter(seg101_config, tmp_path, capsys):
    import torch
    from mmengine.analysis import get_model_complexity_info

    from seg101_mm.proxies.flops import count_flops
    out = run_script('get_flops',
                     [seg101_config, '--shape', 64, 96, '--json', tmp_path / 'c.json'])
    printed = capsys.readouterr().out
    assert 'Input shape: (3, 64, 96)' in printed
    assert f'Flops: {human(out["flops"])} ({out["flops"]:,})' in printed
    model = build_inference_model(load_config(seg101_config))
    x = torch.zeros(1, 3, 64, 96)
    assert out['flops'] == int(count_flops(model, x)) > 0
    # mmengine's full complexity report (a second trace) agrees
    info = get_model_complexity_info(model, inputs=(x, ), show_table=False, show_arch=False)
    assert out['flops'] == info['flops']
    assert out['params'] == sum(p.numel() for p in model.parameters()) == info['params']
    saved = json.loads((tmp_path / 'c.json').read_text())
    assert saved['flops'] == out['flops'] and saved['input_shape'] == [3, 64, 96]


def test_deeplabv3plus_flops_scale_with_the_image_area():
    cfg = repo_config('deeplabv3plus/*cpu*mass-roads*.py')
    small = run_script('get_flops', [cfg, '--shape', 32])
    large = run_script('get_flops', [cfg, '--shape', 64])
    # all convolutions: 4x the pixels is 4x the work, but for the constant image-pool branch
    assert 3.9 < large['flops'] / small['flops'] <= 4.0
    assert large['params'] == small['params']


def test_default_shape_is_the_training_input(seg101_config):
    cfg = load_config(seg101_config)
    assert default_shape(cfg) == tuple(cfg.model.data_preprocessor.size)


def test_human_units():
    assert human(176_512_000_000) == '176.51G'
    assert human(7_893_755) == '7.89M'
    assert human(512) == '512'


def test_bad_shape_gives_one_error_line(seg101_config, capsys):
    line = script_error('get_flops', [seg101_config, '--shape', 1, 2, 3], capsys)
    assert line.endswith('error: --shape takes H [W], positive integers, got [1, 2, 3]')
