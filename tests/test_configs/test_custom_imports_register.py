"""Every shipped config registers what it names through its own ``custom_imports``.

Found by glob like the training test, but without training: in a fresh interpreter (one per
distinct ``custom_imports``), each config is read without importing anything, then its
``custom_imports`` are imported the way mmengine does, and every ``type`` the config names
(model, data pipeline, hooks, search loop, strategy, launcher...) must resolve in the mmseg
scope's registries. The SEG101 ones must resolve to this package's classes.
"""
import json
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)

_CHECK = textwrap.dedent('''
    import json, sys
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    paths = json.loads(sys.argv[1])
    imports = json.loads(sys.argv[2])
    assert not any(m.startswith('seg101_mm') for m in sys.modules), 'seg101_mm imported early'
    import_modules_from_strings(**imports)

    import mmseg.registry as mmseg_registry
    from mmengine.registry import DefaultScope, Registry
    from seg101_mm.search import registry as search_registry
    registries = [r for mod in (mmseg_registry, search_registry) for r in vars(mod).values()
                  if isinstance(r, Registry)]

    def types(node):
        if isinstance(node, dict):
            if isinstance(node.get('type'), str):
                yield node['type']
            for value in node.values():
                yield from types(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                yield from types(value)

    def resolve(name):
        for registry in registries:
            obj = registry.get(name)
            if obj is not None:
                return obj
        return None

    out = {}
    with DefaultScope.overwrite_default_scope('mmseg'):
        for path in paths:
            cfg = Config.fromfile(path, import_custom_modules=False)
            found, missing = {}, []
            for name in sorted(set(types(cfg.to_dict()))):
                obj = resolve(name)
                if obj is None:
                    missing.append(name)
                else:
                    found[name] = getattr(obj, '__module__', '')
            out[path] = dict(missing=missing, seg101=sorted(
                n for n, m in found.items() if m.split('.')[0] == 'seg101_mm'))
    print('REPORT ' + json.dumps(out))
''')


def _custom_imports(path):
    cfg = Config.fromfile(path, import_custom_modules=False)
    return cfg.get('custom_imports')


def test_every_shipped_config_imports_the_registration_module():
    assert CONFIGS, 'no config found under configs/'
    for path in CONFIGS:
        imports = _custom_imports(path)
        rel = path.relative_to(REPO)
        assert imports, f'{rel} has no custom_imports'
        assert imports.get('allow_failed_imports') is False, rel
        assert 'seg101_mm.registration' in imports['imports'], rel


def test_custom_imports_register_every_type_a_config_names():
    pytest.importorskip('mmseg')
    groups = defaultdict(list)
    for path in CONFIGS:
        groups[json.dumps(_custom_imports(path).to_dict(), sort_keys=True)].append(str(path))
    for imports, paths in groups.items():
        out = subprocess.run(
            [sys.executable, '-W', 'ignore', '-c', _CHECK,
             json.dumps(paths), imports],
            capture_output=True,
            text=True,
            cwd=str(REPO),
            timeout=600)
        assert out.returncode == 0, out.stderr[-4000:]
        line = [ln for ln in out.stdout.splitlines() if ln.startswith('REPORT ')][-1]
        report = json.loads(line[len('REPORT '):])
        for path, result in report.items():
            rel = Path(path).relative_to(REPO)
            assert result['missing'] == [], f'{rel}: unregistered types {result["missing"]}'
            assert result['seg101'], f'{rel} names no SEG101 type'
