"""Draw a PNG grid of test tiles: image, ground truth, and the prediction of one or more models.

One row per tile, as in the paper's qualitative figures (Fig. 4 and 5): the aerial image, its
ground-truth mask, then one column per model. Masks are drawn white on black; pixels with the
ignore index (255, e.g. the converter's padding) are grey. With ``--errors`` the prediction
columns colour the mistakes: false positives red, false negatives blue.

Predictions come either from a model (config and checkpoint, run on the CPU or a GPU with
mmseg's ``inference_model``) or from a folder of prediction PNGs named like the tiles (for
example written by ``tools/test.py ... --out DIR``, or by ``SegPaperMetric(output_dir=DIR)``).

Examples::

    python tools/analysis_tools/visualize_predictions.py data/mass_roads --split test \\
        --model SEG101 configs/seg101/<config>.py work_dirs/seg101/iter_300.pth \\
        --model DeepLabV3+ configs/deeplabv3plus/<config>.py work_dirs/dlv3p/iter_300.pth \\
        --num 4 --out work_dirs/fig_mass_roads.png

    python tools/analysis_tools/visualize_predictions.py data/whu_building \\
        --pred-dir SEG101 work_dirs/seg101/pred --tiles rio_img62.png rio_img63.png
"""
import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

IGNORE_INDEX = 255
IGNORE_GREY = (128, 128, 128)
FALSE_POSITIVE = (230, 40, 40)
FALSE_NEGATIVE = (40, 90, 230)


def mask_to_rgb(mask: np.ndarray, gt: Optional[np.ndarray] = None) -> np.ndarray:
    """A 0/1 mask as white on black, ignore pixels grey; with ``gt``, errors in colour."""
    rgb = np.zeros(mask.shape + (3, ), np.uint8)
    rgb[mask == 1] = 255
    if gt is not None:
        valid = gt != IGNORE_INDEX
        rgb[valid & (mask == 1) & (gt == 0)] = FALSE_POSITIVE
        rgb[valid & (mask == 0) & (gt == 1)] = FALSE_NEGATIVE
        rgb[~valid] = IGNORE_GREY
    else:
        rgb[mask == IGNORE_INDEX] = IGNORE_GREY
    return rgb


def select_tiles(img_dir: Path,
                 tiles: Optional[Sequence[str]] = None,
                 num: int = 4,
                 seed: int = 0) -> List[str]:
    """The tile file names to draw: ``tiles`` if given, else ``num`` drawn with ``seed``."""
    available = sorted(p.name for p in Path(img_dir).iterdir() if p.suffix == '.png')
    if not available:
        raise FileNotFoundError(f'no .png tiles in {img_dir}')
    if tiles:
        missing = [t for t in tiles if t not in available]
        if missing:
            raise FileNotFoundError(f'tiles not found in {img_dir}: {", ".join(missing)}')
        return list(tiles)
    if num < 1:
        raise ValueError(f'num must be >= 1, got {num}')
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(available), size=min(num, len(available)), replace=False)
    return [available[i] for i in sorted(picked)]


def read_label_png(path: Path) -> np.ndarray:
    if not Path(path).is_file():
        raise FileNotFoundError(f'mask not found: {path}')
    return np.array(Image.open(path))


def predict_with_model(config: str,
                       checkpoint: Optional[str],
                       img_paths: Sequence[Path],
                       device: str = 'cpu') -> List[np.ndarray]:
    """Class-index maps of ``img_paths`` from an mmseg model (checkpoint None: random init)."""
    from mmseg.apis import inference_model, init_model

    import seg101_mm  # noqa: F401  (registers the SEG101 modules, compat fixes)
    model = init_model(config, checkpoint, device=device)
    preds = []
    for path in img_paths:
        result = inference_model(model, str(path))
        preds.append(result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8))
    return preds


def draw_grid(images: Sequence[np.ndarray],
              gts: Sequence[np.ndarray],
              predictions: Dict[str, Sequence[np.ndarray]],
              out: Path,
              titles: Optional[Sequence[str]] = None,
              errors: bool = False,
              cell_inches: float = 2.2) -> Path:
    """Write the grid PNG: one row per tile, columns image, ground truth, each model."""
    names = list(predictions)
    cols = 2 + len(names)
    rows = len(images)
    fig, axes = plt.subplots(
        rows, cols, figsize=(cell_inches * cols, cell_inches * rows), squeeze=False)
    for r in range(rows):
        panels = [images[r], mask_to_rgb(gts[r])]
        for name in names:
            pred = predictions[name][r]
            if pred.shape != gts[r].shape:
                raise ValueError(f'prediction of {name!r} for row {r} has shape {pred.shape}, '
                                 f'ground truth {gts[r].shape}')
            panels.append(mask_to_rgb(pred, gts[r] if errors else None))
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel, interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title((['Image', 'Ground truth'] + names)[c], fontsize=10)
            if c == 0 and titles is not None:
                ax.set_ylabel(titles[r], fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='PNG grid of tiles: image, ground truth, predictions of several models')
    parser.add_argument('data_root', help='converted dataset root (img_dir/, ann_dir/)')
    parser.add_argument('--split', default='test', help='split folder (default: test)')
    parser.add_argument(
        '--model',
        nargs=3,
        action='append',
        default=[],
        metavar=('NAME', 'CONFIG', 'CHECKPOINT'),
        help='a model column; CHECKPOINT "none" draws a randomly initialised model')
    parser.add_argument(
        '--pred-dir',
        nargs=2,
        action='append',
        default=[],
        metavar=('NAME', 'DIR'),
        help='a model column read from a folder of prediction PNGs named like the tiles')
    parser.add_argument('--tiles', nargs='+', help='tile file names (default: random pick)')
    parser.add_argument('--num', type=int, default=4, help='tiles drawn when --tiles is absent')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random pick')
    parser.add_argument('--errors', action='store_true', help='colour FP red and FN blue')
    parser.add_argument('--device', default='cpu', help='device for --model inference')
    parser.add_argument('--out', default='work_dirs/predictions.png', help='output PNG')
    args = parser.parse_args(argv)
    if not args.model and not args.pred_dir:
        parser.error('give at least one --model or --pred-dir column')
    return args


def main(argv=None) -> Path:
    args = parse_args(argv)
    root = Path(args.data_root)
    img_dir, ann_dir = root / 'img_dir' / args.split, root / 'ann_dir' / args.split
    names = select_tiles(img_dir, args.tiles, args.num, args.seed)
    img_paths = [img_dir / n for n in names]
    images = [np.array(Image.open(p).convert('RGB')) for p in img_paths]
    gts = [read_label_png(ann_dir / n) for n in names]
    predictions: Dict[str, List[np.ndarray]] = {}
    for name, config, checkpoint in args.model:
        ckpt = None if checkpoint.lower() == 'none' else checkpoint
        predictions[name] = predict_with_model(config, ckpt, img_paths, args.device)
    for name, folder in args.pred_dir:
        predictions[name] = [read_label_png(Path(folder) / n) for n in names]
    out = draw_grid(images, gts, predictions, args.out, titles=names, errors=args.errors)
    print(f'wrote {out} ({len(names)} tiles x {2 + len(predictions)} columns)')
    return out


if __name__ == '__main__':
    main()
