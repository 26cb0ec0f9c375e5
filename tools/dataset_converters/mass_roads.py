"""Convert Massachusetts Roads (Mnih, 2013) into mmseg's layout of 512x512 tiles.

Source layout (the original dataset): ``{train,valid,test}/{sat,map}/<id>.tiff|.tif|.png``.
Output::

    <out>/img_dir/{train,val,test}/<id>_<y0>_<x0>.png   RGB tiles
    <out>/ann_dir/{train,val,test}/<id>_<y0>_<x0>.png   masks, 0 = background, 1 = road

Every 1500x1500 image is cut into a grid of evenly spaced, overlapping tiles that cover every
pixel; the default 4x4 grid of 512 tiles gives the paper's 16 tiles per image (224 val, 784
test tiles). Masks 0/255 become 0/1 (255 is mmseg's ignore index).

Pure-white (255, 255, 255) pixels are no-data in this imagery, yet the source road labels run
through them. By default their labels become 255 (ignored), so a model is neither trained nor
scored on blank areas; ``--keep-nodata-labels`` keeps the source labels there, for evaluation
as in the paper. The report of each split prints the no-data share of its pixels.
``--nodata-threshold`` drops tiles whose share of no-data pixels is at least the given
fraction, in the splits named by ``--drop-splits`` (train only by default, so val and test keep
the paper's counts).

Example::

    python tools/dataset_converters/mass_roads.py /data/massachusetts-roads -o data/mass_roads \
        --nproc 8 --nodata-threshold 0.5
"""
from pathlib import Path

from seg101_mm.datasets.conversion import (NODATA_RGB, convert_split, converter_main,
                                           converter_parser, parse_converter_args)

SPLITS = {'train': 'train', 'valid': 'val', 'test': 'test'}  # source folder -> mmseg split


def parse_args(argv=None):
    parser = converter_parser(
        'Convert Massachusetts Roads to mmseg format (512x512 tiles, 0/1 masks)',
        'dataset root holding {train,valid,test}/{sat,map}', 'data/mass_roads')
    parser.add_argument(
        '--grid',
        type=int,
        nargs=2,
        default=(4, 4),
        metavar=('ROWS', 'COLS'),
        help='tiles per image column and row (default 4 4: 16 tiles per 1500x1500 image); '
        '0 0 picks the fewest tiles that cover the image')
    parser.add_argument(
        '--nodata-threshold',
        type=float,
        default=None,
        help='drop tiles whose share of pure-white no-data pixels is at least this '
        '(a fraction in (0, 1]); default: keep every tile')
    parser.add_argument(
        '--keep-nodata-labels',
        action='store_true',
        help='keep the source labels on pure-white no-data pixels (default: mark them 255, '
        'ignored in training and metrics)')
    parser.add_argument(
        '--drop-splits',
        nargs='+',
        default=['train'],
        choices=sorted(SPLITS.values()),
        help='output splits where --nodata-threshold applies (default: train)')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=sorted(SPLITS.values()),
        choices=sorted(SPLITS.values()),
        help='output splits to convert (default: all)')
    args = parse_converter_args(parser, argv)
    if args.nodata_threshold is not None and not 0 < args.nodata_threshold <= 1:
        parser.error(f'--nodata-threshold must be in (0, 1], got {args.nodata_threshold}')
    if (min(args.grid) < 0) or (0 in args.grid and tuple(args.grid) != (0, 0)):
        parser.error(f'--grid must be two positive numbers or 0 0, got {args.grid}')
    return args


def convert(args) -> dict:
    """Convert the requested splits; return ``{split: TileReport}``."""
    src, out = Path(args.src), Path(args.out_dir)
    grid = None if tuple(args.grid) == (0, 0) else tuple(args.grid)
    reports = {}
    for src_split, split in SPLITS.items():
        if split not in args.splits:
            continue
        threshold = args.nodata_threshold if split in args.drop_splits else None
        # what the written tiles depend on; a new --nodata-threshold is applied to tiles in place
        settings = dict(
            tile_size=args.tile_size,
            grid=list(grid) if grid else None,
            nodata_labels='keep' if args.keep_nodata_labels else 'ignore')
        report, img_out = convert_split(
            split,
            src / src_split / 'sat',
            src / src_split / 'map',
            out,
            settings,
            args.overwrite,
            args.nproc,
            tile_size=args.tile_size,
            grid=grid,
            pad=False,
            nodata_threshold=threshold,
            nodata_colors=(NODATA_RGB, ),
            ignore_nodata=not args.keep_nodata_labels)
        reports[split] = report
        dropped = (f'{report.dropped} dropped (pure-white no-data share >= {threshold})'
                   if threshold is not None else '0 dropped (no-data dropping off)')
        print(f'\n{split}: {len(report.tiles)} tiles from {report.sources} images: '
              f'{report.written} written, {report.skipped} already present (skipped), '
              f'{dropped}; {report.nodata_text()}, labels there '
              f'{"kept" if args.keep_nodata_labels else "ignored (255)"} -> {img_out}')
    return reports


def main(argv=None):
    converter_main(parse_args, convert, argv)


if __name__ == '__main__':
    main()
