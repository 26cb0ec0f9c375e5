"""Shared machinery of the dataset converters in ``tools/dataset_converters/``.

A converter pairs every aerial image with its mask, checks them, and writes 512x512 tiles in
mmseg's layout (``img_dir/<split>``, ``ann_dir/<split>``) with 0/1 masks, because 255 is mmseg's
ignore index (docs/method.md section 9). The rules, shared by both datasets:

- every image needs a mask with the same stem and vice versa, and both must have the same size;
- masks are single channel, or RGB with three equal channels, with values in {0, 255} or in
  {0, 1}; anything else is an error naming the file and the values found;
- outputs are written to a temporary name and renamed, so an interrupted run leaves no partial
  file; a rerun skips tiles whose image and mask both exist, unless ``overwrite`` is set;
- an image smaller than the tile is padded at the bottom and right (image with 0, mask with the
  ignore index 255, so padding counts neither in the loss nor in the metric) when ``pad`` is
  set, and is an error otherwise;
- no-data pixels (by default pure white, ``NODATA_RGB``) can have their labels replaced by the
  ignore index (``ignore_nodata``), so a model is neither trained nor scored on blank areas;
  every report gives the share of no-data pixels in the source images it read.

The command line the converters share (source, output root, tile size, worker processes,
overwrite, the error line) and the conversion of one split are :func:`converter_parser`,
:func:`parse_converter_args`, :func:`convert_split` and :func:`converter_main`.
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .tiling import pad_to, tile_grid

IGNORE_INDEX = 255
NODATA_RGB = (255, 255, 255)
BLACK_RGB = (0, 0, 0)


class ConversionError(ValueError):
    """A source file that cannot be converted; the message names the file."""


def _stems(folder: Path, suffixes: Sequence[str]) -> Dict[str, Path]:
    suffixes = tuple(s.lower() for s in suffixes)
    found: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            raise ConversionError(f'two files with the stem {path.stem!r} in {folder}: '
                                  f'{found[path.stem].name} and {path.name}')
        found[path.stem] = path
    return found


def pair_files(
    img_dir: Path,
    mask_dir: Path,
    img_suffixes: Sequence[str] = ('.tiff', '.tif', '.png'),
    mask_suffixes: Sequence[str] = ('.tif', '.tiff', '.png')
) -> List[Tuple[str, Path, Path]]:
    """``(stem, image path, mask path)`` for every image of ``img_dir``, sorted by stem.

    Raises:
        ConversionError: A folder is missing, is empty, or an image has no mask (or a mask no
            image); the message lists the unpaired files.
    """
    img_dir, mask_dir = Path(img_dir), Path(mask_dir)
    for folder in (img_dir, mask_dir):
        if not folder.is_dir():
            raise ConversionError(f'folder not found: {folder}')
    images = _stems(img_dir, img_suffixes)
    masks = _stems(mask_dir, mask_suffixes)
    if not images:
        raise ConversionError(f'no images with suffix {tuple(img_suffixes)} in {img_dir}')
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        names = ', '.join(images[s].name for s in no_mask[:5])
        raise ConversionError(f'{len(no_mask)} image(s) without a mask in {mask_dir}: {names}' +
                              (' ...' if len(no_mask) > 5 else ''))
    if no_image:
        names = ', '.join(masks[s].name for s in no_image[:5])
        raise ConversionError(f'{len(no_image)} mask(s) without an image in {img_dir}: {names}' +
                              (' ...' if len(no_image) > 5 else ''))
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def read_image(path: Path) -> np.ndarray:
    """An 8-bit RGB image (HxWx3 uint8); grey images are repeated, an alpha channel dropped."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConversionError(f'cannot read image {path} (missing, empty or not an image)')
    if img.dtype != np.uint8:
        raise ConversionError(f'image {path} has pixel type {img.dtype}; expected 8-bit (uint8)')
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise ConversionError(f'image {path} has {img.shape[2]} channels; expected 1, 3 or 4')
    return img


def read_mask(path: Path) -> np.ndarray:
    """A 0/1 mask (HxW uint8) from a mask with values in {0, 255} or {0, 1}.

    RGB masks are accepted when the three channels are equal.
    """
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ConversionError(f'cannot read mask {path} (missing, empty or not an image)')
    if mask.ndim == 3:
        if mask.shape[2] == 4:
            mask = mask[..., :3]
        if not (np.array_equal(mask[..., 0], mask[..., 1])
                and np.array_equal(mask[..., 0], mask[..., 2])):
            raise ConversionError(f'mask {path} is colour with differing channels; expected a '
                                  'single-channel (or grey RGB) mask with values 0/255 or 0/1')
        mask = mask[..., 0]
    values = set(np.unique(mask).tolist())
    if values <= {0, 255}:
        return (mask == 255).astype(np.uint8)
    if values <= {0, 1}:
        return mask.astype(np.uint8)
    raise ConversionError(f'mask {path} has values {sorted(values)[:10]}; expected only '
                          '{0, 255} or only {0, 1}')


def write_png_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (HxW, or HxWx3 RGB) as PNG through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f'.{path.stem}.{os.getpid()}.tmp.png')
    data = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    if not cv2.imwrite(str(tmp), data):
        raise ConversionError(f'could not write {tmp}')
    os.replace(tmp, path)


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs to convert one image/mask pair (picklable).

    Args:
        stem (str): Output name stem.
        img_path (Path): Source image.
        mask_path (Path): Source mask.
        img_out (Path): Output image folder (``img_dir/<split>``).
        ann_out (Path): Output mask folder (``ann_dir/<split>``).
        tile_size (int): Tile side in pixels.
        grid (tuple[int, int], optional): Tiles per column and row; None = fewest covering.
        pad (bool): Pad images smaller than a tile instead of failing.
        nodata_threshold (float, optional): Drop tiles whose share of no-data pixels is at
            least this; None keeps every tile.
        overwrite (bool): Rewrite tiles that already exist.
        single_name (bool): Name a pair that gives one tile ``<stem>.png`` rather than
            ``<stem>_<y0>_<x0>.png``.
        nodata_colors (tuple[tuple[int, int, int], ...]): RGB values that mark a no-data pixel
            (all three channels equal to one of them). Used by ``nodata_threshold`` and
            ``ignore_nodata``.
        ignore_nodata (bool): Write the ignore index (255) into the mask wherever the image is
            no-data; False keeps the source labels there.
    """
    stem: str
    img_path: Path
    mask_path: Path
    img_out: Path
    ann_out: Path
    tile_size: int = 512
    grid: Optional[Tuple[int, int]] = (4, 4)
    pad: bool = False
    nodata_threshold: Optional[float] = None
    overwrite: bool = False
    single_name: bool = False
    nodata_colors: Tuple[Tuple[int, int, int], ...] = (NODATA_RGB, )
    ignore_nodata: bool = False


@dataclass
class TileReport:
    """What a conversion did: tiles written, already present, and dropped as no-data.

    ``nodata_pixels`` and ``read_pixels`` count the no-data pixels and all pixels of the source
    images that were decoded (a rerun that finds every tile of an image in place skips it).
    """
    written: int = 0
    skipped: int = 0
    dropped: int = 0
    padded: int = 0
    sources: int = 0
    tiles: List[str] = field(default_factory=list)
    nodata_pixels: int = 0
    read_pixels: int = 0

    def add(self, other: 'TileReport') -> 'TileReport':
        self.written += other.written
        self.skipped += other.skipped
        self.dropped += other.dropped
        self.padded += other.padded
        self.sources += other.sources
        self.tiles.extend(other.tiles)
        self.nodata_pixels += other.nodata_pixels
        self.read_pixels += other.read_pixels
        return self

    @property
    def nodata_fraction(self) -> Optional[float]:
        """Share of no-data pixels in the decoded source images; None when none was read."""
        return self.nodata_pixels / self.read_pixels if self.read_pixels else None

    def nodata_text(self) -> str:
        """The no-data share as a report line fragment."""
        fraction = self.nodata_fraction
        if fraction is None:
            return 'no-data share not measured (no source image decoded)'
        return f'no-data {100 * fraction:.1f} % of source pixels'


def nodata_mask(img: np.ndarray, colors: Sequence[Tuple[int, int, int]]) -> np.ndarray:
    """Boolean HxW map of the pixels whose three channels equal one of ``colors``."""
    mask = np.zeros(img.shape[:2], dtype=bool)
    for color in colors:
        mask |= np.all(img == np.asarray(color, dtype=img.dtype), axis=2)
    return mask


def _tile_names(job: TileJob, corners: List[Tuple[int, int]]) -> List[str]:
    if job.single_name and len(corners) == 1:
        return [f'{job.stem}.png']
    return [f'{job.stem}_{y:04d}_{x:04d}.png' for y, x in corners]


def _corners(job: TileJob, height: int, width: int) -> List[Tuple[int, int]]:
    if job.pad:
        height, width = max(height, job.tile_size), max(width, job.tile_size)
    return tile_grid(height, width, job.tile_size, job.grid)


def convert_pair(job: TileJob) -> TileReport:
    """Check one image/mask pair and write its tiles; return what was done."""
    report = TileReport(sources=1)
    # a rerun that finds every tile in place need not decode the (large) source again; with
    # no-data dropping the image must be read to know which tiles belong. Whether the tiles
    # in place were written with the same no-data rule is checked per split by the converter
    # (``check_settings``).
    if not job.overwrite and job.nodata_threshold is None:
        size = _source_size(job.img_path)
        if size is not None and (job.pad or min(size) >= job.tile_size):
            names = _tile_names(job, _corners(job, *size))
            if all((job.img_out / n).is_file() and (job.ann_out / n).is_file() for n in names):
                report.skipped = len(names)
                report.tiles = names
                report.padded = int(job.pad and min(size) < job.tile_size)
                return report
    img = read_image(job.img_path)
    mask = read_mask(job.mask_path)
    if img.shape[:2] != mask.shape:
        raise ConversionError(f'size mismatch: image {job.img_path} is {img.shape[1]}x'
                              f'{img.shape[0]} but mask {job.mask_path} is {mask.shape[1]}x'
                              f'{mask.shape[0]} (width x height)')
    height, width = mask.shape
    nodata = nodata_mask(img, job.nodata_colors)
    report.nodata_pixels, report.read_pixels = int(nodata.sum()), nodata.size
    if job.ignore_nodata:
        mask = np.where(nodata, np.uint8(IGNORE_INDEX), mask)
    t = job.tile_size
    if height < t or width < t:
        if not job.pad:
            raise ConversionError(f'image {job.img_path} is {width}x{height}, smaller than the '
                                  f'tile size {t}')
        img = pad_to(img, max(height, t), max(width, t), 0)
        mask = pad_to(mask, max(height, t), max(width, t), IGNORE_INDEX)
        nodata = pad_to(nodata, max(height, t), max(width, t), False)
        report.padded = 1
    corners = _corners(job, height, width)
    for (y, x), name in zip(corners, _tile_names(job, corners)):
        img_tile = img[y:y + t, x:x + t]
        if job.nodata_threshold is not None:
            if nodata[y:y + t, x:x + t].mean() >= job.nodata_threshold:
                report.dropped += 1
                for stale in (job.img_out / name, job.ann_out / name):  # from another threshold
                    stale.unlink(missing_ok=True)
                continue
        report.tiles.append(name)
        if (not job.overwrite and (job.img_out / name).is_file()
                and (job.ann_out / name).is_file()):
            report.skipped += 1
            continue
        write_png_atomic(job.img_out / name, np.ascontiguousarray(img_tile))
        write_png_atomic(job.ann_out / name, np.ascontiguousarray(mask[y:y + t, x:x + t]))
        report.written += 1
    return report


def _source_size(path: Path) -> Optional[Tuple[int, int]]:
    """``(height, width)`` from the file header without decoding the pixels, if possible."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            width, height = im.size
        return height, width
    except Exception:  # unreadable here: convert_pair's full read raises the clear error
        return None


SETTINGS_FILE = 'conversion.json'


def check_settings(out_dir: Path, split: str, settings: dict, overwrite: bool) -> None:
    """Refuse to mix tiles written under different conversion settings in one split.

    The settings of every converted split are kept in ``<out_dir>/conversion.json``. A rerun
    with other settings (another no-data rule, tile size or grid) would skip the tiles in place
    and leave a split converted two ways, so it is an error unless ``overwrite`` is set.
    """
    path = Path(out_dir) / SETTINGS_FILE
    recorded = {}
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConversionError(f'cannot read {path}: {e}; delete it and rerun with '
                                  '--overwrite') from None
    previous = recorded.get(split)
    # a setting missing on one side reads as None (a file of an older converter)
    changed = ', '.join(f'{k}: {previous.get(k)!r} -> {settings.get(k)!r}'
                        for k in sorted(set(previous or {}) | set(settings))
                        if previous.get(k) != settings.get(k)) if previous is not None else ''
    if changed and not overwrite:
        raise ConversionError(f'the {split} tiles in {out_dir} were converted with other '
                              f'settings ({changed}); rerun with --overwrite to rewrite them')


def record_settings(out_dir: Path, split: str, settings: dict) -> None:
    """Record ``settings`` for ``split`` in ``<out_dir>/conversion.json`` (atomically)."""
    path = Path(out_dir) / SETTINGS_FILE
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded[split] = settings
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(recorded, indent=2, sort_keys=True) + '\n')
    os.replace(tmp, path)


def run_jobs(jobs: Sequence[TileJob], nproc: int = 1) -> TileReport:
    """Run ``convert_pair`` on every job with ``nproc`` worker processes and a progress bar."""
    import mmengine
    if not jobs:
        return TileReport()
    if nproc > 1:
        reports = mmengine.track_parallel_progress(convert_pair, list(jobs), nproc)
    else:
        reports = mmengine.track_progress(convert_pair, list(jobs))
    total = TileReport()
    for r in reports:
        total.add(r)
    return total


def converter_parser(description: str,
                     src_help: str,
                     out_dir: str,
                     tile_help: str = 'tile side in pixels') -> argparse.ArgumentParser:
    """The arguments every converter starts with: ``src``, ``-o/--out-dir`` and
    ``--tile-size``; :func:`parse_converter_args` adds ``--nproc`` and ``--overwrite``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=src_help)
    parser.add_argument('-o', '--out-dir', default=out_dir, help='output root')
    parser.add_argument('--tile-size', type=int, default=512, help=tile_help)
    return parser


def parse_converter_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Add ``--nproc`` and ``--overwrite``, parse ``argv`` and check the shared values."""
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument('--overwrite', action='store_true', help='rewrite existing tiles')
    args = parser.parse_args(argv)
    if args.tile_size <= 0:
        parser.error(f'--tile-size must be positive, got {args.tile_size}')
    if args.nproc < 1:
        parser.error(f'--nproc must be >= 1, got {args.nproc}')
    return args


def convert_split(split: str, img_dir: Path, mask_dir: Path, out_dir: Path, settings: dict,
                  overwrite: bool, nproc: int, **job_options) -> Tuple[TileReport, Path]:
    """Tile every image/mask pair of ``img_dir`` and ``mask_dir`` into ``split`` of
    ``out_dir``, refusing settings other than those the split was converted with.

    Args:
        settings (dict): What the written tiles depend on (:func:`check_settings`).
        **job_options: The :class:`TileJob` fields other than the paths and ``overwrite``.

    Returns:
        tuple[TileReport, Path]: The split's report and its image folder.
    """
    pairs = pair_files(img_dir, mask_dir)
    img_out = Path(out_dir) / 'img_dir' / split
    ann_out = Path(out_dir) / 'ann_dir' / split
    img_out.mkdir(parents=True, exist_ok=True)
    ann_out.mkdir(parents=True, exist_ok=True)
    check_settings(out_dir, split, settings, overwrite)
    jobs = [
        TileJob(
            stem=stem,
            img_path=img,
            mask_path=mask,
            img_out=img_out,
            ann_out=ann_out,
            overwrite=overwrite,
            **job_options) for stem, img, mask in pairs
    ]
    print(f'{split}: {len(jobs)} images from {Path(img_dir).parent}')
    report = run_jobs(jobs, nproc)
    record_settings(out_dir, split, settings)
    return report, img_out


def converter_main(parse_args, convert, argv=None):
    """Run a converter's ``convert(parse_args(argv))``; a :class:`ConversionError` is one
    ``error: ...`` line and exit status 1."""
    args = parse_args(argv)
    try:
        convert(args)
    except ConversionError as e:
        sys.exit(f'error: {e}')
