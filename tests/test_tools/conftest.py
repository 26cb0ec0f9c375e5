"""Fixtures for the tests of the command-line tools."""
import pytest


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
    """6 train / 2 val / 2 test procedural road scenes of 64x64 with 0/1 masks."""
    from seg101_mm.datasets.synthetic import make_synthetic_dataset
    root = tmp_path_factory.mktemp('tiny_roads')
    return make_synthetic_dataset(
        root, kind='roads', num_train=6, num_val=2, num_test=2, size=64, seed=0)
