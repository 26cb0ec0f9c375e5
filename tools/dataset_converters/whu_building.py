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
from pathlib import Path

from seg101_mm.datasets.conversion import (BLACK_RGB, NODATA_RGB, convert_split, converter_main,
                                           converter_parser, parse_converter_args)

SPLITS = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = converter_parser(
        'Convert WHU building to mmseg format (512x512 tiles, 0/1 masks)',
        'dataset root holding {train,val,test}/{image,label}',
        'data/whu_building',
        tile_help='output tile side in pixels')
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
    args = parse_converter_args(parser, argv)
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
        settings = dict(
            tile_size=args.tile_size,
            nodata_labels='ignore' if args.ignore_nodata else 'keep',
            nodata_colors=[list(c) for c in args.nodata_colors] if args.ignore_nodata else None)
        report, img_out = convert_split(
            split,
            src / split / 'image',
            src / split / 'label',
            out,
            settings,
            args.overwrite,
            args.nproc,
            tile_size=args.tile_size,
            grid=None,
            pad=True,
            single_name=True,
            nodata_colors=args.nodata_colors,
            ignore_nodata=args.ignore_nodata)
        reports[split] = report
        print(f'\n{split}: {len(report.tiles)} tiles from {report.sources} images: '
              f'{report.written} written, {report.skipped} already present (skipped), '
              f'{report.padded} images padded to {args.tile_size}; {report.nodata_text()}, '
              f'labels there {"ignored (255)" if args.ignore_nodata else "kept"} -> {img_out}')
    return reports


def main(argv=None):
    converter_main(parse_args, convert, argv)


if __name__ == '__main__':
    main()
