"""Every training config under ``configs/`` trains: 2 iterations and one validation each.

The configs are found by glob, so a new one is covered the day it lands. Search configs (whose
model is the search controller) are not training configs; what they train is covered through
their candidate and export templates, which live under ``configs/search`` and are found by the
same glob, and through the best-architecture config that a search exports, written here by the
search's own exporter.

Each run goes through the train command line (``seg101_mm.tools.train``) with ``--cfg-options``
that keep the config's own model, loss, optimiser and pipeline, and change only what a CPU test
must: random initialisation (pretrained checkpoints are neither downloaded nor read), a tiny
dataset written by the test, 64x64 crops and test scale, batch 2, no checkpoint.
"""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config

import seg101_mm  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
CROP = 64
ITERS = 2


def _is_training_config(cfg) -> bool:
    model = cfg.get('model') or {}
    return model.get('type') not in (None, 'SearchController') and 'train_dataloader' in cfg


def _configs():
    """``(training configs, search configs)`` under ``configs/``, base files excluded."""
    training, search = [], []
    for path in sorted(CONFIGS.rglob('*.py')):
        rel = path.relative_to(REPO)
        if rel.parts[1] == '_base_':
            continue
        cfg = Config.fromfile(path)
        if _is_training_config(cfg):
            training.append(str(rel))
        elif (cfg.get('model') or {}).get('type') == 'SearchController':
            search.append(str(rel))
        else:
            raise AssertionError(f'{rel} is neither a training nor a search config')
    return training, search


TRAINING_CONFIGS, SEARCH_CONFIGS = _configs()
#: Search configs that export a best architecture (a benchmark build exports none).
EXPORTING_CONFIGS = [
    c for c in SEARCH_CONFIGS if Config.fromfile(REPO / c).train_cfg.get('export') is not None
]


def _load_train_tool():
    from seg101_mm.tools import train  # what tools/train.py runs
    return train


def _write_tiny_dataset(root: Path) -> Path:
    """Two train tiles and one val/test tile of 96x96 with a target-class stripe and ignore."""
    rng = np.random.default_rng(0)
    for split, count in (('train', 2), ('val', 1), ('test', 1)):
        (root / 'img_dir' / split).mkdir(parents=True)
        (root / 'ann_dir' / split).mkdir(parents=True)
        for i in range(count):
            img = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
            mask = np.zeros((96, 96), np.uint8)
            mask[:, 40 + 8 * i:52 + 8 * i] = 1
            mask[:4] = 255  # an ignored band, as no-data and padding are
            cv2.imwrite(str(root / 'img_dir' / split / f't{i}.png'), img)
            cv2.imwrite(str(root / 'ann_dir' / split / f't{i}.png'), mask)
    return root


def _index(pipeline, kind):
    hits = [i for i, t in enumerate(pipeline) if t['type'] == kind]
    return hits[0] if hits else None


def cpu_test_options(cfg, data_root, run_name) -> list:
    """The ``--cfg-options`` words that shrink ``cfg`` to the tiny CPU test run.

    ``run_name`` names the visualizer: mmengine keeps one visualizer per name in a process, and
    a second run under the same name would write its scalars into the first run's folder.
    """
    crop = f'({CROP},{CROP})'
    opts = [
        f'visualizer.name={run_name}', f'model.data_preprocessor.size={crop}',
        f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
        'default_hooks.checkpoint=None', 'default_hooks.logger.interval=1', 'randomness.seed=0'
    ]
    if cfg.model.get('pretrained'):
        opts.append('model.pretrained=None')
    if (cfg.model.get('backbone') or {}).get('init_cfg'):
        opts.append('model.backbone.init_cfg=None')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if not cfg.get(loader):
            continue
        opts += [
            f'{loader}.dataset.data_root={data_root}', f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False'
        ]
    opts.append('train_dataloader.batch_size=2')
    train = cfg.train_dataloader.dataset.pipeline
    i = _index(train, 'RandomCrop')
    if i is not None:
        opts.append(f'train_dataloader.dataset.pipeline.{i}.crop_size={crop}')
    i = _index(train, 'RandomChoiceResize')
    if i is not None:
        opts.append(f'train_dataloader.dataset.pipeline.{i}.scales=[{crop},(96,96)]')
    if cfg.get('val_dataloader'):
        if cfg.val_dataloader.dataset.get('indices') is not None:  # a fixed val subset
            opts.append('val_dataloader.dataset.indices=None')
        i = _index(cfg.val_dataloader.dataset.pipeline, 'Resize')
        if i is not None:
            opts.append(f'val_dataloader.dataset.pipeline.{i}.scale={crop}')
        i = _index(cfg.val_dataloader.dataset.pipeline, 'CenterCropTile')
        if i is not None:
            opts.append(f'val_dataloader.dataset.pipeline.{i}.crop_size={CROP}')
    return opts


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return _write_tiny_dataset(tmp_path_factory.mktemp('tiny_tiles'))


@pytest.fixture(scope='module')
def train_tool():
    return _load_train_tool()


def test_the_glob_finds_every_kind_of_config():
    dirs = {Path(p).parent.name for p in TRAINING_CONFIGS}
    assert {'seg101', 'deeplabv3plus', 'pspnet', 'candidates', 'full'} <= dirs
    assert SEARCH_CONFIGS, 'no search config found under configs/search'
    assert 'candidates' in {
        Path(p).parent.name
        for p in TRAINING_CONFIGS if Path(p).parts[1] == 'nasbench'
    }
    # a search config without an export is a benchmark build, which writes its file instead
    for c in set(SEARCH_CONFIGS) - set(EXPORTING_CONFIGS):
        hooks = Config.fromfile(REPO / c).get('custom_hooks') or []
        assert [h['type'] for h in hooks] == ['NASBenchExportHook'], c


def _train_and_read_scalars(train_tool, config_path, data_root, work_dir):
    cfg = Config.fromfile(config_path)
    argv = [str(config_path), '--work-dir', str(work_dir), '--cfg-options']
    argv += cpu_test_options(cfg, data_root, f'vis_{Path(work_dir).parent.name}')
    train_tool.main(argv)
    scalars = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert scalars, f'{config_path}: no scalars.json under {work_dir}'
    return [json.loads(line) for line in scalars[-1].read_text().splitlines() if line]


def _check_run(rows, name):
    losses = [r for r in rows if 'loss' in r]
    assert [r['iter'] for r in losses] == list(range(1, ITERS + 1)), name
    assert all(math.isfinite(r['loss']) for r in losses), name
    vals = [r for r in rows if 'mIoU' in r]
    assert len(vals) == 1 and vals[0]['step'] == ITERS, name
    assert 0.0 <= vals[0]['mIoU'] <= 100.0, name


@pytest.mark.parametrize('config', TRAINING_CONFIGS)
def test_config_trains_two_iterations_and_validates(config, tiny_data, train_tool, tmp_path):
    rows = _train_and_read_scalars(train_tool, REPO / config, tiny_data, tmp_path / 'work')
    _check_run(rows, config)


@pytest.mark.parametrize('search_config', EXPORTING_CONFIGS)
def test_exported_best_architecture_config_trains(search_config, tiny_data, train_tool, tmp_path):
    from seg101_mm.search.reports import export_best
    from seg101_mm.space import sample

    cfg = Config.fromfile(REPO / search_config)
    export = dict(cfg.train_cfg.export)
    if not Path(export['template']).is_absolute():
        export['template'] = str(REPO / export['template'])
    genotype = sample(3)
    record = dict(
        id=0,
        status='done',
        score=50.0,
        genotype=str(genotype),
        key=genotype.key,
        metrics=dict(mIoU=50.0))
    path = export_best([record], tmp_path, export, data_root=str(tiny_data))
    assert path is not None and path.is_file()
    rows = _train_and_read_scalars(train_tool, path, tiny_data, tmp_path / 'work')
    _check_run(rows, f'export of {search_config}')
    assert Config.fromfile(path).model.neck.genotype == str(genotype.canonical())
