"""The pieces of tools/train.py and tools/test.py that are not mmengine's: CPU distributed set-up,
SyncBN replacement, AMP switch, work-dir priority, CLI; and the mmcv-lite check the Runner
makes."""
import os
import pkgutil

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from tool_helpers import free_port

from seg101_mm.tools import train


def _cfg(**extra):
    cfg = Config(
        dict(
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            model=dict(
                type='EncoderDecoder',
                backbone=dict(type='ResNetV1c', norm_cfg=dict(type='SyncBN', requires_grad=True)),
                decode_head=dict(
                    type='ASPPHead',
                    norm_cfg=dict(type='BN'),
                    loss_decode=[dict(type='CrossEntropyLoss'),
                                 dict(type='DiceLoss')])),
            optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)),
            **extra))
    return cfg


def test_replace_sync_bn_converts_every_sync_bn_at_any_depth_and_nothing_else():
    model = dict(
        backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
        heads=[dict(norm_cfg=dict(type='MMSyncBN')), (dict(type='SyncBatchNorm'), 3)],
        neck=dict(norm_cfg=dict(type='GN', num_groups=4)),
        loss=dict(type='CrossEntropyLoss'))
    out = train.replace_sync_bn(model)
    assert out['backbone']['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert out['heads'][0]['norm_cfg'] == dict(type='BN')
    assert out['heads'][1] == (dict(type='BN'), 3) and isinstance(out['heads'][1], tuple)
    assert out['neck']['norm_cfg'] == dict(type='GN', num_groups=4)
    assert out['loss'] == dict(type='CrossEntropyLoss')
    # the input is left untouched
    assert model['backbone']['norm_cfg']['type'] == 'SyncBN'


def test_prepare_cpu_distributed_does_nothing_without_the_pytorch_launcher():
    cfg = _cfg()
    assert train.prepare_cpu_distributed(cfg, 'none') is False
    assert cfg.get('model_wrapper_cfg') is None
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'


def test_prepare_cpu_distributed_names_the_missing_torchrun_variables(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip('the CPU path is only taken without CUDA')
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('RANK', '0')
    with pytest.raises(RuntimeError, match=r"\['WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'\]"):
        train.prepare_cpu_distributed(_cfg(), 'pytorch')


def test_prepare_cpu_distributed_initialises_gloo_and_a_cpu_ddp_wrapper(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip('the CPU path is only taken without CUDA')
    assert not torch_dist.is_initialized()
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    cfg = _cfg(find_unused_parameters=True, sync_bn='torch')
    try:
        assert train.prepare_cpu_distributed(cfg, 'pytorch') is True
        assert torch_dist.is_initialized()
        assert torch_dist.get_backend() == 'gloo'
        assert torch_dist.get_world_size() == 1
        assert cfg.model_wrapper_cfg == dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=True)
        assert cfg.model.backbone.norm_cfg == dict(type='BN', requires_grad=True)
        assert cfg.norm_cfg.type == 'BN'
        assert cfg.model.decode_head.loss_decode[1] == dict(type='DiceLoss')
        assert cfg.sync_bn is None  # would turn BN back into SyncBN in Runner.wrap_model
        # a second call (e.g. tools/test.py after training in one process) keeps the group
        # and a wrapper the config already names
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, find_unused_parameters=False)
        assert train.prepare_cpu_distributed(cfg, 'pytorch') is True
        assert cfg.model_wrapper_cfg.find_unused_parameters is False
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def test_enable_amp_switches_the_optim_wrapper_and_rejects_others():
    cfg = _cfg()
    train.enable_amp(cfg, device='cuda')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = _cfg()
    train.enable_amp(cfg, device='cpu')  # mmengine's AmpOptimWrapper refuses the CPU
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
    train.enable_amp(cfg, device='cpu')  # already mixed precision: unchanged
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    cfg.optim_wrapper.type = 'ZeroRedundancyOptimizerWrapper'
    with pytest.raises(ValueError, match="'ZeroRedundancyOptimizerWrapper'"):
        train.enable_amp(cfg)


def test_work_dir_priority_cli_then_config_then_config_name():
    cfg = _cfg(work_dir='from_config')
    train.set_work_dir(cfg, 'from_cli', 'configs/x/my_config.py')
    assert cfg.work_dir == 'from_cli'
    cfg = _cfg(work_dir='from_config')
    train.set_work_dir(cfg, None, 'configs/x/my_config.py')
    assert cfg.work_dir == 'from_config'
    cfg = _cfg()
    train.set_work_dir(cfg, None, 'configs/x/my_config.py')
    assert cfg.work_dir == os.path.join('./work_dirs', 'my_config')


def test_runners_mmcv_full_check_answers_with_the_standin():
    from mmengine.utils.dl_utils import mmcv_full_available

    from seg101_mm.utils.compat import compiled_ops_available
    if compiled_ops_available():
        pytest.skip('full mmcv is installed: there is no stand-in')
    # Runner.wrap_model asks this of every non-distributed run (tools/train.py, tools/test.py)
    assert pkgutil.find_loader('mmcv._ext') is None
    assert mmcv_full_available() is False


def test_parse_args_matches_mmseg_cli(monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = train.parse_args([
        'cfg.py', '--work-dir', 'w', '--resume', '--amp', '--launcher', 'pytorch', '--local-rank',
        '3', '--cfg-options', 'train_cfg.max_iters=7', 'model.a=[1,2]'
    ])
    assert (args.config, args.work_dir, args.resume, args.amp,
            args.launcher) == ('cfg.py', 'w', True, True, 'pytorch')
    assert args.cfg_options == {'train_cfg.max_iters': 7, 'model.a': [1, 2]}
    assert os.environ['LOCAL_RANK'] == '3'
    with pytest.raises(SystemExit):
        train.parse_args(['cfg.py', '--launcher', 'kubernetes'])


def test_test_tool_options_reach_the_config(tmp_path):
    from seg101_mm.tools import test
    cfg = Config(
        dict(
            model=dict(type='EncoderDecoder'),
            test_evaluator=[dict(type='IoUMetric'),
                            dict(type='SegPaperMetric')],
            default_hooks=dict(visualization=dict(type='SegVisualizationHook')),
            visualizer=dict(type='SegLocalVisualizer'),
            test_dataloader=dict(dataset=dict(pipeline=['test'])),
            tta_pipeline=['tta'],
            tta_model=dict(type='SegTTAModel')))
    args = test.parse_args(['cfg.py', 'ckpt.pth', '--show-dir', str(tmp_path / 'vis'), '--tta'])
    test.trigger_visualization_hook(cfg, args)
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.default_hooks.visualization.interval == 1  # every test image is painted
    assert cfg.visualizer.save_dir == str(tmp_path / 'vis')
    test.set_prediction_dir(cfg, 'preds')
    assert [e['output_dir'] for e in cfg.test_evaluator] == ['preds', 'preds']
    test.enable_tta(cfg)
    assert cfg.test_dataloader.dataset.pipeline == ['tta']
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module.type == 'EncoderDecoder'
    cfg.tta_pipeline = None
    with pytest.raises(ValueError, match='tta_pipeline'):
        test.enable_tta(cfg)
