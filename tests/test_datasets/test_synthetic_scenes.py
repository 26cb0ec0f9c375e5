"""make_synthetic_dataset: layout, determinism, mask values, and that the task is learnable."""
import cv2
import numpy as np
import pytest

from seg101_mm.datasets.synthetic import make_synthetic_dataset, make_synthetic_scene


def _read_split(root, split):
    names = sorted(p.name for p in (root / 'img_dir' / split).iterdir())
    imgs = [cv2.imread(str(root / 'img_dir' / split / n))[..., ::-1] for n in names]
    masks = [cv2.imread(str(root / 'ann_dir' / split / n), cv2.IMREAD_UNCHANGED) for n in names]
    return names, imgs, masks


@pytest.mark.parametrize('kind', ['roads', 'buildings'])
def test_layout_values_and_counts(tmp_path, kind):
    root = make_synthetic_dataset(
        tmp_path / kind, kind=kind, num_train=5, num_val=2, num_test=3, size=48, seed=3)
    assert root == tmp_path / kind
    for split, n in (('train', 5), ('val', 2), ('test', 3)):
        names, imgs, masks = _read_split(root, split)
        assert len(names) == n
        assert names == sorted(p.name for p in (root / 'ann_dir' / split).iterdir())
        for img, mask in zip(imgs, masks):
            assert img.shape == (48, 48, 3) and img.dtype == np.uint8
            assert mask.shape == (48, 48) and mask.dtype == np.uint8
            assert set(np.unique(mask)) == {0, 1}  # both classes in every scene
            assert 0.005 < mask.mean() < 0.6


def test_same_seed_same_files_other_seed_differs(tmp_path):
    a = make_synthetic_dataset(tmp_path / 'a', seed=7, num_train=3, num_val=1, num_test=1)
    b = make_synthetic_dataset(tmp_path / 'b', seed=7, num_train=3, num_val=1, num_test=1)
    c = make_synthetic_dataset(tmp_path / 'c', seed=8, num_train=3, num_val=1, num_test=1)
    for sub in ('img_dir/train', 'ann_dir/train', 'img_dir/test'):
        for p in (a / sub).iterdir():
            assert (a / sub / p.name).read_bytes() == (b / sub / p.name).read_bytes()
    assert ((a / 'ann_dir/train' / 'roads_train_0000.png').read_bytes()
            != (c / 'ann_dir/train' / 'roads_train_0000.png').read_bytes())


def test_val_and_test_do_not_depend_on_num_train(tmp_path):
    a = make_synthetic_dataset(tmp_path / 'a', num_train=2, num_val=1, num_test=1)
    b = make_synthetic_dataset(tmp_path / 'b', num_train=6, num_val=1, num_test=1)
    name = 'roads_test_0000.png'
    assert (a / 'img_dir/test' / name).read_bytes() == (b / 'img_dir/test' / name).read_bytes()


@pytest.mark.parametrize('kind', ['roads', 'buildings'])
def test_targets_are_separable_from_colour(kind):
    """A nearest-class-mean colour classifier fit on train scenes finds most targets in others.

    Not a network, but it shows the scenes carry a learnable signal (target IoU well above
    the all-background 0) while the background texture keeps it from being perfect.
    """
    rng = np.random.default_rng(0)
    train = [make_synthetic_scene(rng, kind, 64) for _ in range(6)]
    test = [make_synthetic_scene(rng, kind, 64) for _ in range(6)]
    x = np.concatenate([i.reshape(-1, 3) for i, _ in train]).astype(float)
    y = np.concatenate([m.ravel() for _, m in train])
    means = np.stack([x[y == c].mean(0) for c in (0, 1)])
    tx = np.concatenate([i.reshape(-1, 3) for i, _ in test]).astype(float)
    ty = np.concatenate([m.ravel() for _, m in test])
    pred = np.argmin(((tx[:, None, :] - means[None])**2).sum(-1), axis=1)
    iou = ((pred == 1) & (ty == 1)).sum() / ((pred == 1) | (ty == 1)).sum()
    assert iou > 0.5


def test_errors_name_the_bad_value(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of .*'lakes'"):
        make_synthetic_dataset(tmp_path, kind='lakes')
    with pytest.raises(ValueError, match='num_val must be >= 0, got -1'):
        make_synthetic_dataset(tmp_path, num_val=-1)
    with pytest.raises(ValueError, match='size must be >= 16 pixels, got 8'):
        make_synthetic_dataset(tmp_path, size=8)
