"""Candidate configs: literal values only, no code injection, round trip through mmengine."""
import ast

import pytest
from mmengine.config import Config

from seg101_mm.search.config_writer import (candidate_config, format_literal, render_config,
                                            write_config)
from seg101_mm.space import sample

TEMPLATE = 'configs/search/candidates/seg101_regnetx400mf_1xb2-cpu-tiny_roads-64x64.py'


@pytest.fixture(scope='module')
def template(repo_root):
    return Config.fromfile(str(repo_root / TEMPLATE)).to_dict()


def test_candidate_config_round_trip(template, tmp_path):
    g = sample(11)
    cfg = candidate_config(
        template,
        g,
        data_root='/data/roads',
        work_dir=str(tmp_path),
        seed=7,
        extra_hooks=[dict(type='SearchResultHook', timeout=None)])
    path = write_config(tmp_path / 'c.py', cfg, header='candidate 1')
    back = Config.fromfile(str(path))
    assert back.model.neck.genotype == back.model.decode_head.genotype == g.key
    assert back.train_dataloader.dataset.data_root == '/data/roads'
    assert back.val_dataloader.dataset.data_root == '/data/roads'
    assert back.randomness == dict(seed=7, deterministic=False)
    assert back.custom_hooks[-1]['type'] == 'SearchResultHook'
    assert '_base_' not in path.read_text()  # standalone
    assert back.to_dict() == cfg


def test_hostile_text_stays_data(template, tmp_path):
    evil = "x'); import os; os.system('touch pwned'); ('"
    cfg = candidate_config(template, sample(1), data_root=evil, work_dir=evil + '\n__import__')
    path = write_config(tmp_path / 'c.py', cfg, header="line\nimport os  # '''")
    text = path.read_text()
    for stmt in ast.parse(text).body:
        assert isinstance(stmt, ast.Assign)  # no import, no call statement
    back = Config.fromfile(str(path))
    assert back.data_root == evil and not (tmp_path / 'pwned').exists()
    with pytest.raises(ValueError, match='invalid genotype field'):
        candidate_config(template, "ga=conv3x3');import os;('", data_root='/d')
    with pytest.raises(ValueError, match='seed must be an int'):
        candidate_config(template, sample(1), seed='0; import os')


def test_non_literal_values_are_refused():
    with pytest.raises(ValueError, match=r"cfg.model.fn = .* a function"):
        render_config(dict(model=dict(fn=lambda: 0)))
    with pytest.raises(ValueError, match='finite number'):
        render_config(dict(lr=float('inf')))
    with pytest.raises(ValueError, match="top-level config name 'import' is not a valid"):
        render_config({'import': 1})
    with pytest.raises(ValueError, match='no neck/decode_head with a "genotype"'):
        candidate_config(dict(model=dict(type='EncoderDecoder')), sample(0))


def test_format_literal_is_readable_and_exact():
    value = dict(a=(1, ), b=[1.5, None, True], c={'x-y': 'q"\'z'}, d=-3)
    text = format_literal(value)
    assert text == "dict(a=(1,), b=[1.5, None, True], c={'x-y': 'q\"\\'z'}, d=-3)"
    assert eval(text, {'dict': dict}) == value  # noqa: S307  (a test of the literal itself)


def test_mmengine_text_substitution_cannot_rewrite_or_run(template, tmp_path, monkeypatch):
    # Config.fromfile substitutes these patterns in the file text before parsing it; a quote
    # in the config's folder name would then end the string literal that held the pattern.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('SEG_PAYLOAD', "'+str(open('pwned-env','w'))+'")
    folder = tmp_path / "d'+str(open('pwned-dir','w'))+'"
    payloads = [
        '{{fileDirname}}', '{{ fileBasename }}/x', '{{$HOME:/fallback}}',
        "{{'$SEG_UNSET_ROOT:/fallback'}}", '{{$SEG_PAYLOAD:x}}', '{{ _base_.data }}', '{', '}}{{',
        '\\{{fileDirname}}'
    ]
    for i, p in enumerate(payloads):
        cfg = candidate_config(template, sample(1), data_root=p, work_dir=p + '/w')
        cfg['nested'] = {'k-{{fileExtname}}': {'v-{{fileDirname}}': p}}
        path = write_config(folder / f'c{i}.py', cfg, header=f'search in {p}')
        assert '{{' not in path.read_text()
        back = Config.fromfile(str(path))
        assert back.data_root == p and back.work_dir == p + '/w'
        assert back.train_dataloader.dataset.data_root == p
        assert back.nested == {'k-{{fileExtname}}': {'v-{{fileDirname}}': p}}
        assert back.to_dict() == cfg
    assert not (tmp_path / 'pwned-dir').exists() and not (tmp_path / 'pwned-env').exists()
    with pytest.raises(ValueError, match=r"generated config text holds '\{\{'"):
        from seg101_mm.search.config_writer import _assert_literal_source
        _assert_literal_source("x = '{{fileDirname}}'\n")
