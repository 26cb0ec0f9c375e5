"""seg101_mm.datasets: Massachusetts Roads, WHU Building, their conversion, and procedural
stand-ins for tests."""
from .conversion import (ConversionError, TileJob, TileReport, convert_pair, pair_files,
                         read_image, read_mask, run_jobs)
from .mass_roads import MassachusettsRoadsDataset
from .synthetic import make_synthetic_dataset, make_synthetic_scene
from .tiling import pad_to, tile_grid, tile_starts
from .transforms import CenterCropTile
from .whu_building import WHUBuildingDataset

__all__ = [
    'MassachusettsRoadsDataset', 'WHUBuildingDataset', 'make_synthetic_dataset',
    'make_synthetic_scene', 'ConversionError', 'TileJob', 'TileReport', 'convert_pair',
    'pair_files', 'read_image', 'read_mask', 'run_jobs', 'pad_to', 'tile_grid', 'tile_starts',
    'CenterCropTile'
]
