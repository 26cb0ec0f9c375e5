"""Convert the WHU aerial building dataset into mmseg's layout with 0/1 masks.

Source layout: ``{train,val,test}/{image,label}/<name>.tif|.tiff|.png`` (labels single channel
or RGB, values 0/255). Output::

    <out>/img_dir/{train,val,test}/<name>.png   RGB tiles
    <out>/ann_dir/{train,val,test}/<name>.png   masks, 0 = background, 1 = building

WHU tiles are 512x512 and are copied as they are. Tiles of any other size follow one rule,
so that every output tile is exactly ``--tile-size`` square:

- a side shorter than the tile is padded at the bottom or right, the image with 0 and the mask
  with 255, mmseg's ignore index, so padding counts neither in the loss nor in the metrics;
- a side longer than the tile is cut into the fewest evenly spaced, overlapping tiles that
  cover it, named ``<name>_<y0>_<x0>.png``.

Blank areas of the imagery (pure black or pure white, all three channels) are no-data.
``--ignore-nodata`` marks their labels 255 (ignored in training and metrics); by default the
source labels are kept, as in WHU's own tiles. ``--nodata-color`` sets which RGB values count.
The report of each split prints the no-data share of its pixels.

Example::

    python tools/dataset_converters/whu_building.py /data/WHU -o data/whu_building --nproc 8
"""
import argparse
import sys
from pathlib import Path

from seg101_mm.datasets.conversion import (BLACK_RGB, NODATA_RGB, ConversionError, TileJob,
                                           check_settings, pair_files, record_settings,
                                           run_jobs)

SPLITS = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert WHU building to mmseg format (512x512 tiles, 0/1 masks)')
    parser.add_argument('src', help='dataset root holding {train,val,test}/{image,label}')
    parser.add_argument('-o', '--out-dir', default='data/whu_building', help='output root')
    parser.add_argument('--tile-size', type=int, default=512, help='output tile side in pixels')
    parser.add_argument(
        '--splits', nargs='+', default=list(SPLITS), choices=SPLITS, help='splits to convert')
    parser.add_argument(
        '--ignore-nodata',
        action='store_true',
        help='mark the labels of no-data pixels 255 (ignored); default: keep them')
    parser.add_argument(
        '--nodata-color',
        action='append',
        metavar='R,G,B',
        help='an RGB value that marks no-data pixels; repeat for several (default: 0,0,0 and '
        '255,255,255)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument('--overwrite', action='store_true', help='rewrite existing tiles')
    args = parser.parse_args(argv)
    if args.tile_size <= 0:
        parser.error(f'--tile-size must be positive, got {args.tile_size}')
    if args.nproc < 1:
        parser.error(f'--nproc must be >= 1, got {args.nproc}')
    args.nodata_colors = tuple(_color(parser, c) for c in args.nodata_color) \
        if args.nodata_color else (BLACK_RGB, NODATA_RGB)
    return args


def _color(parser, text):
    parts = text.split(',')
    try:
        rgb = tuple(int(p) for p in parts)
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        parser.error(f'--nodata-color must be three integers 0-255 as R,G,B, got {text!r}')
    return rgb


def convert(args) -> dict:
    """Convert the requested splits; return ``{split: TileReport}``."""
    src, out = Path(args.src), Path(args.out_dir)
    reports = {}
    for split in SPLITS:
        if split not in args.splits:
            continue
        pairs = pair_files(src / split / 'image', src / split / 'label')
        img_out = out / 'img_dir' / split
        ann_out = out / 'ann_dir' / split
        img_out.mkdir(parents=True, exist_ok=True)
        ann_out.mkdir(parents=True, exist_ok=True)
        settings = dict(
            tile_size=args.tile_size,
            nodata_labels='ignore' if args.ignore_nodata else 'keep',
            nodata_colors=[list(c) for c in args.nodata_colors] if args.ignore_nodata else None)
        check_settings(out, split, settings, args.overwrite)
        jobs = [
            TileJob(
                stem=stem,
                img_path=img,
                mask_path=mask,
                img_out=img_out,
                ann_out=ann_out,
                tile_size=args.tile_size,
                grid=None,
                pad=True,
                overwrite=args.overwrite,
                single_name=True,
                nodata_colors=args.nodata_colors,
                ignore_nodata=args.ignore_nodata) for stem, img, mask in pairs
        ]
        print(f'{split}: {len(jobs)} images from {src / split}')
        report = run_jobs(jobs, args.nproc)
        record_settings(out, split, settings)
        reports[split] = report
        print(f'\n{split}: {len(report.tiles)} tiles from {report.sources} images: '
              f'{report.written} written, {report.skipped} already present (skipped), '
              f'{report.padded} images padded to {args.tile_size}; {report.nodata_text()}, '
              f'labels there {"ignored (255)" if args.ignore_nodata else "kept"} -> {img_out}')
    return reports


def main(argv=None):
    args = parse_args(argv)
    try:
        convert(args)
    except ConversionError as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
