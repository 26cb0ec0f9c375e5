"""conversion.json: a rerun with other tile settings is refused and names what changed; a
record of an older converter with an extra empty setting is not a change."""
import json

import pytest

from seg101_mm.datasets.conversion import ConversionError, check_settings, record_settings

SETTINGS = dict(tile_size=512, grid=[4, 4], nodata_labels='ignore')


def test_changed_setting_is_named(tmp_path):
    record_settings(tmp_path, 'train', SETTINGS)
    check_settings(tmp_path, 'train', dict(SETTINGS), overwrite=False)
    with pytest.raises(
            ConversionError,
            match=r"the train tiles in .* were converted with other "
            r"settings \(nodata_labels: 'ignore' -> 'keep'\); rerun with "
            r"--overwrite"):
        check_settings(tmp_path, 'train', dict(SETTINGS, nodata_labels='keep'), overwrite=False)
    check_settings(tmp_path, 'train', dict(SETTINGS, nodata_labels='keep'), overwrite=True)
    # another split is not compared
    check_settings(tmp_path, 'val', dict(SETTINGS, tile_size=256), overwrite=False)


def test_older_record_with_an_empty_extra_setting(tmp_path):
    (tmp_path / 'conversion.json').write_text(
        json.dumps({'train': dict(SETTINGS, nodata_threshold=None)}))
    check_settings(tmp_path, 'train', dict(SETTINGS), overwrite=False)
    (tmp_path / 'conversion.json').write_text(
        json.dumps({'train': dict(SETTINGS, nodata_threshold=0.5)}))
    with pytest.raises(ConversionError, match=r'nodata_threshold: 0.5 -> None'):
        check_settings(tmp_path, 'train', dict(SETTINGS), overwrite=False)
