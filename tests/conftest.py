"""Shared fixtures: where the real sample tiles live, and a reason to skip when they don't."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """``$SEG101_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get('SEG101_SHARED_DATA')
    return Path(env) if env else REPO_ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data():
    root = shared_data_root()
    if not (root / 'mass_roads').is_dir() or not (root / 'spacenet_rio_whu_layout').is_dir():
        pytest.skip(f'real sample tiles not found at {root} (set SEG101_SHARED_DATA to the '
                    f'folder holding mass_roads/ and spacenet_rio_whu_layout/)')
    return root


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT
