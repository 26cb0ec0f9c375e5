"""A backbone trained in-house: extracted from a checkpoint, hashed, and loaded by init_cfg."""
import hashlib
import json
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from tool_helpers import GENOTYPE_UNUSED_S4, TOOLS, run_tool, write_tiny_config

import seg101_mm  # noqa: F401
from seg101_mm.models import build_seg101
from seg101_mm.models.backbone_weights import (backbone_init_cfg, extract_backbone, file_sha256,
                                               load_backbone_record, pretrained_weights_sha256,
                                               weights_sha256)


def _segmentor(seed, backbone_checkpoint=None):
    torch.manual_seed(seed)
    init_default_scope('mmseg')
    model = build_seg101(
        GENOTYPE_UNUSED_S4, num_classes=2, backbone_checkpoint=backbone_checkpoint)
    model.init_weights()
    return model


def test_extracted_backbone_loads_through_init_cfg(tmp_path):
    trained = _segmentor(0)
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(dict(meta=dict(iter=2), state_dict=trained.state_dict()), ckpt)
    record = extract_backbone(ckpt, tmp_path / 'cache' / 'bb.pth', meta=dict(seed=0))
    out = tmp_path / 'cache' / 'bb.pth'
    assert record['sha256'] == hashlib.sha256(out.read_bytes()).hexdigest() == file_sha256(out)
    assert json.loads((tmp_path / 'cache' / 'bb.pth.json').read_text()) == record
    saved = torch.load(out, map_location='cpu', weights_only=True)  # tensors and metadata only
    assert saved['meta'] == dict(seed=0)
    backbone_keys = {k for k in trained.state_dict() if k.startswith('backbone.')}
    assert set(saved['state_dict']) == backbone_keys and record['tensors'] == len(backbone_keys)
    assert 4.0e6 < record['params'] < 6.0e6  # RegNetX-400MF without its classifier
    backbone_state = {k: v for k, v in trained.state_dict().items() if k in backbone_keys}
    assert record['weights_sha256'] == weights_sha256(backbone_state)
    assert load_backbone_record(out) == record
    # what a candidate that starts from it records (SearchResultHook's backbone_sha256)
    assert pretrained_weights_sha256(backbone_init_cfg(out)) == record['weights_sha256']
    whole = tmp_path / 'whole.pth'  # a whole segmentor's checkpoint: only the prefix counts
    torch.save(dict(state_dict=trained.state_dict()), whole)
    assert pretrained_weights_sha256(backbone_init_cfg(whole)) == record['weights_sha256']
    assert pretrained_weights_sha256(dict(type='Pretrained', checkpoint=str(whole))) != \
        record['weights_sha256']
    for not_a_file in (None, dict(type='Kaiming'), backbone_init_cfg(tmp_path / 'nope.pth'),
                       backbone_init_cfg('https://example.org/regnet.pth')):
        assert pretrained_weights_sha256(not_a_file) is None
    # the weights hash names the weights, not the file: a new save of them keeps it
    torch.save(dict(state_dict=saved['state_dict'], meta=dict(seed=5)), out)
    assert load_backbone_record(out)['weights_sha256'] == record['weights_sha256']
    # and a changed weight is caught
    saved['state_dict']['backbone.conv1.weight'] = \
        saved['state_dict']['backbone.conv1.weight'] + 1e-3
    torch.save(saved, out)
    with pytest.raises(ValueError, match='weights hash .* does not match the recorded'):
        load_backbone_record(out)
    torch.save(dict(state_dict=backbone_state, meta=dict(seed=0)), out)

    assert backbone_init_cfg(out) == dict(
        type='Pretrained', checkpoint=str(out), prefix='backbone.')
    fresh = _segmentor(1, backbone_checkpoint=str(out))  # init_cfg=backbone_init_cfg(out)
    for k, v in fresh.backbone.state_dict().items():
        torch.testing.assert_close(v, trained.state_dict()['backbone.' + k], msg=k)
    # the neck and head are not touched by the backbone file
    head = next(k for k in fresh.state_dict() if k.startswith('decode_head.'))
    assert not torch.equal(fresh.state_dict()[head], trained.state_dict()[head])


def test_extract_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found: .*nope.pth'):
        extract_backbone(tmp_path / 'nope.pth', tmp_path / 'bb.pth')
    ckpt = tmp_path / 'head_only.pth'
    torch.save(dict(state_dict={'decode_head.w': torch.zeros(2)}), ckpt)
    with pytest.raises(ValueError, match="head_only.pth holds no tensor named 'backbone.'"):
        extract_backbone(ckpt, tmp_path / 'bb.pth')
    assert not (tmp_path / 'bb.pth').exists()


def test_pretrain_backbone_tool_trains_resumes_and_extracts(tmp_path, tiny_dataset):
    cfg = write_tiny_config(tmp_path / 'tiny.py', tiny_dataset, max_iters=2)
    out = tmp_path / 'cache' / 'bb.pth'
    cmd = [
        sys.executable, TOOLS / 'pretrain_backbone.py', cfg, '--out', out, '--seed', '3',
        '--work-dir', tmp_path / 'wd'
    ]
    first = run_tool(cmd)
    sha = json.loads((tmp_path / 'cache' / 'bb.pth.json').read_text())['weights_sha256']
    assert f'weights sha256: {sha}' in first.stdout
    meta = torch.load(out, weights_only=True)['meta']
    assert (meta['seed'], meta['iters']) == (3, 2)
    # a second run finds the finished training and extracts the same weights again
    second = run_tool(cmd)
    assert '--resume' in second.stdout and f'weights sha256: {sha}' in second.stdout


def test_pretrain_backbone_bad_arguments_are_one_line(tmp_path):
    proc = run_tool_failing([
        sys.executable, TOOLS / 'pretrain_backbone.py', tmp_path / 'missing.py', '--out',
        tmp_path / 'bb.pth'
    ])
    assert 'config not found: ' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'bb.pth').exists()


def run_tool_failing(args):
    import subprocess

    from tool_helpers import tool_env
    proc = subprocess.run([str(a) for a in args],
                          env=tool_env(),
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode != 0
    return proc
