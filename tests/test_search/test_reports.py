"""The search's reports: the exported best-architecture config follows the lead."""
import json
from pathlib import Path

from mmengine.config import Config

from seg101_mm.search.reports import EXPORT_NAME, export_best, write_leaderboard
from seg101_mm.space import sample

REPO = Path(__file__).resolve().parents[2]
EXPORT = dict(
    template=str(REPO / 'configs/search/full/seg101_regnetx400mf_2xb2-100e_mass-roads-512x512.py'))


def record(cid, score, seed):
    genotype = sample(seed)
    return dict(
        id=cid,
        round=0,
        status='done',
        score=score,
        genotype=str(genotype),
        key=genotype.key,
        metrics=dict(mIoU=score))


def test_a_new_leader_replaces_the_exported_config(tmp_path):
    records = [record(0, 45.0, 1), record(1, 44.0, 2)]
    first = export_best(records, tmp_path, EXPORT)
    assert EXPORT_NAME.fullmatch(first.name)
    mine = tmp_path / 'best_notes_full-train.py'  # not an export's name: left alone
    mine.write_text('# kept\n')
    records.append(record(2, 47.5, 3))
    second = export_best(records, tmp_path, EXPORT)
    assert second != first and not first.exists() and mine.exists()
    exported = [p for p in tmp_path.glob('best_*_full-train.py') if EXPORT_NAME.fullmatch(p.name)]
    assert exported == [second]
    best = json.loads((tmp_path / 'best.json').read_text())
    assert (best['id'], best['score'], best['score_metric'], best['config']) == (2, 47.5, 'mIoU',
                                                                                 str(second))
    assert Config.fromfile(second).model.neck.genotype == str(sample(3).canonical())
    # the same leader again: its config stays
    assert export_best(records, tmp_path, EXPORT) == second and second.exists()


def test_leaderboard_ranks_done_candidates_and_lists_failures_last(tmp_path):
    records = [record(0, 45.0, 1), record(1, 48.0, 2), record(3, 48.0, 4)]
    records.append(dict(id=2, round=0, status='failed', key='k', cause='boom', log='x.log'))
    rows = (tmp_path / 'lb.csv')
    write_leaderboard(records, rows)
    lines = rows.read_text().splitlines()
    assert [line.split(',')[:5] for line in lines[1:]] == [
        ['1', '1', '0', 'done', '48.0000'],
        ['2', '3', '0', 'done', '48.0000'],  # a tie: the earlier candidate first
        ['3', '0', '0', 'done', '45.0000'],
        ['', '2', '0', 'failed', ''],
    ]
