"""Fixtures for the analysis-tool tests: generated road scenes, a repository config."""
import pytest
from analysis_helpers import repo_config


@pytest.fixture(scope='session')
def roads(tmp_path_factory):
    """2 train / 1 val / 3 test generated road scenes of 64x64, masks 0/1."""
    from seg101_mm.datasets.synthetic import make_synthetic_dataset
    return make_synthetic_dataset(
        tmp_path_factory.mktemp('roads'),
        kind='roads',
        num_train=2,
        num_val=1,
        num_test=3,
        size=64,
        seed=0)


@pytest.fixture(scope='session')
def seg101_config():
    return repo_config('seg101/*cpu*mass-roads*.py')


@pytest.fixture(autouse=True)
def _one_thread():
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
