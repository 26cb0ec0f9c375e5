"""tools/analysis_tools/seg101_info.py: counts, description and diagram of one SEG101 network."""
import json

import numpy as np
import pytest
import torch.nn as nn
from mmengine.config import Config
from tool_helpers import GENOTYPE_UNUSED_S4, load_tool, write_tiny_config

from seg101_mm.models import build_seg101
from seg101_mm.space import Genotype

info = load_tool('analysis_tools/seg101_info.py')

GENOTYPE = ('ga=conv3x3,conv3x3,dil3_conv3x3,avgpool_0.25;gb=se,se,self_attention,avgpool_0.25;'
            'st=conv3x3,dil5_conv3x3,avgpool_0.75,conv3x3;h0=01+02+13/01+12;h1=02+03+23/01+02;'
            'hm=concat_head')


def test_genotype_route_prints_the_true_param_count_and_draws_a_png(tmp_path, capsys):
    png, out_json = tmp_path / 'arch.png', tmp_path / 'arch.json'
    summary = info.main([GENOTYPE, '--shape', '64', '--png', str(png), '--json', str(out_json)])
    printed = capsys.readouterr().out

    expected = sum(p.numel() for p in build_seg101(GENOTYPE, init_weights=False).parameters())
    assert summary['params']['total'] == expected
    assert f'Params: {expected:,}' in printed
    p = summary['params']
    assert p['backbone'] + p['neck'] + p['decode_head'] == expected
    assert p['backbone'] == 4_772_512  # RegNetX-400MF without its classifier (STACK.md)

    # structure, with the channel rule of docs/method.md section 3
    assert [s['stride'] for s in summary['stages']] == [4, 8, 16, 32]
    assert [s['size'] for s in summary['stages']] == [[16, 16], [8, 8], [4, 4], [2, 2]]
    assert summary['stages'][2]['group_ops'] == ['se', 'se', 'self_attention', 'avgpool_0.25']
    assert [s['se_hidden'] for s in summary['stages']] == [4, 8, 20, 48]
    head0 = summary['heads'][0]
    assert [n['in_channels'] for n in head0['l1']] == [[32, 64], [32, 160], [64, 384]]
    assert [n['out_channels'] for n in head0['l1']] == [48, 96, 224]
    assert [n['out_channels'] for n in head0['l2']] == [48 // 2 + 96 // 2, 96 // 2 + 224 // 2]
    assert head0['l3']['out_channels'] == 72 + 160
    assert summary['heads'][1]['l3']['out_channels'] == 336
    hm = summary['head_merge']
    assert (hm['type'], hm['in_channels'], hm['classifier_channels'],
            hm['num_classes']) == ('concat_head', 232 + 336, (232 + 336) // 2, 2)
    assert summary['stages_unused'] == []
    assert 'L1.2 = Merge(F2, F4): 64 + 384 -> 224 ch' in printed
    assert 'Head merge: concat_head of head 0 and head 1 (568 ch) -> 284 ch' in printed

    assert summary['flops'] > 0 and summary['activations'] > 0
    assert f'FLOPs: {summary["flops"]:,}' in printed
    assert json.loads(out_json.read_text()) == json.loads(json.dumps(summary))

    import matplotlib.image as mpimg
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    img = mpimg.imread(png)
    assert img.shape[0] > 600 and img.shape[1] > 1000
    assert np.std(img[..., :3]) > 0.05  # something is drawn, not a blank canvas


def test_config_route_reads_the_genotype_and_builds_the_configs_model(tmp_path, capsys):
    config = write_tiny_config(tmp_path / 'seg101_tiny.py', tmp_path / 'no_data_needed')
    summary = info.main([str(config), '--shape', '64', '--no-flops'])
    printed = capsys.readouterr().out
    cfg = Config.fromfile(config)
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    expected = sum(p.numel() for p in MODELS.build(cfg.model).parameters())
    assert summary['genotype'] == str(Genotype.parse(GENOTYPE_UNUSED_S4))
    assert summary['params']['total'] == expected
    assert summary['flops'] is None and 'FLOPs' not in printed
    assert summary['stages_unused'] == ['S4']
    assert 'read by no head: S4' in printed


def test_config_with_different_neck_and_head_genotypes_is_refused(tmp_path):
    config = write_tiny_config(tmp_path / 'bad.py', tmp_path)
    text = config.read_text().replace('decode_head=dict(genotype=genotype)',
                                      f'decode_head=dict(genotype={GENOTYPE!r})')
    config.write_text(text)
    with pytest.raises(ValueError, match='neck and decode_head describe different genotypes'):
        info.build_from_config(str(config))


def test_flop_count_follows_mmengines_multiply_add_convention():
    # one 3x3 conv, 3 -> 8 channels, on 16x16: 16*16*8 outputs x 3*3*3 multiply-adds each
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    flops, activations = info.count_flops(model, (16, 16))
    assert flops == 16 * 16 * 8 * 27
    assert activations == 16 * 16 * 8
    assert info.count_flops(model, (16, 32), activations=False) == (2 * 16 * 16 * 8 * 27, None)


def test_bad_shape_is_rejected_with_the_value(capsys):
    with pytest.raises(SystemExit):
        info.parse_args([GENOTYPE, '--shape', '16'])
    err = capsys.readouterr().err
    assert 'at least 32' in err and '[16, 16]' in err


def test_bad_genotype_text_names_the_field():
    with pytest.raises(ValueError, match='st'):
        info.main([GENOTYPE.replace('st=conv3x3', 'st=conv9x9'), '--no-flops'])


def test_command_line_errors_are_one_line_without_traceback(tmp_path, capsys):
    bad = GENOTYPE.replace('st=conv3x3', 'st=conv9x9')
    assert info.cli([bad, '--no-flops']) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: genotype {bad!r}: ')
    assert 'conv9x9' in lines[0] and 'Traceback' not in captured.err + captured.out
    missing = str(tmp_path / 'no_such_config.py')
    assert info.cli([missing]) == 2
    assert capsys.readouterr().err == f'error: config {missing!r} does not exist\n'
    config = write_tiny_config(tmp_path / 'bad.py', tmp_path)
    config.write_text(config.read_text().replace('decode_head=dict(genotype=genotype)',
                                                 f'decode_head=dict(genotype={GENOTYPE!r})'))
    assert info.cli([str(config), '--no-flops']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'neck and decode_head describe different genotypes' in err
