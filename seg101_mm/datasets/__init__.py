"""seg101_mm.datasets: Massachusetts Roads, WHU Building, and procedural stand-ins for tests."""
from .mass_roads import MassachusettsRoadsDataset
from .synthetic import make_synthetic_dataset, make_synthetic_scene
from .whu_building import WHUBuildingDataset

__all__ = [
    'MassachusettsRoadsDataset', 'WHUBuildingDataset', 'make_synthetic_dataset',
    'make_synthetic_scene'
]
