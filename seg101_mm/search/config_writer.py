"""Write one standalone, human-readable mmseg config per search candidate.

The written file holds only assignments of literal values (``dict(...)``, lists, tuples,
strings, numbers, booleans, None): nothing is inherited, so the config still trains the same
network after the search's templates change, and nothing from a genotype, a ledger or a command
line can become code. The genotype is re-parsed with :meth:`Genotype.parse` and written as its
canonical text through ``repr``; every other value is checked to be a plain literal, and the
finished text is parsed back with :mod:`ast` and refused unless it is literals only.

mmengine's ``Config.fromfile`` rewrites ``{{ fileDirname }}``, ``{{ $VAR:default }}`` and
``{{ _base_.x }}`` patterns in a file's text before it parses it, so every ``{`` and ``}`` inside
a written string is escaped as ``\x7b`` / ``\x7d`` (the value is unchanged), header comments
get no two braces in a row, and a finished text holding ``{{`` is refused.

No mmengine import: the input is a plain dict (e.g. ``Config.fromfile(template).to_dict()``).
"""
import ast
import keyword
import math
import os
import re
from pathlib import Path

from seg101_mm.space import Genotype

_INDENT = '    '
_WIDTH = 96


def _check_literal(value, path='cfg'):
    """Raise ValueError unless ``value`` is built only of plain literal types."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f'{path} = {value!r}: a config literal must be a finite number')
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_literal(v, f'{path}[{i}]')
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise ValueError(f'{path} has a key {k!r} of type {type(k).__name__}; '
                                 f'expected str or int keys')
            _check_literal(v, f'{path}.{k}')
        return
    raise ValueError(f'{path} = {value!r} is a {type(value).__name__}; a candidate config may '
                     f'hold only None, bool, int, float, str, list, tuple and dict values')


def _str_literal(value):
    """``repr`` of a literal, with the braces of a string escaped (see the module docstring)."""
    text = repr(value)
    if isinstance(value, str):
        # repr never writes a brace as part of an escape sequence, so this keeps the value.
        text = text.replace('{', '\\x7b').replace('}', '\\x7d')
    return text


def _is_name(k):
    return isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k)


def format_literal(value, indent=0):
    """Python source of a literal value, ``dict(a=1)`` style where keys allow it."""
    flat = _flat(value)
    if len(flat) + len(_INDENT) * indent <= _WIDTH or not isinstance(value, (dict, list, tuple)):
        return flat
    pad, inner = _INDENT * indent, _INDENT * (indent + 1)
    if isinstance(value, dict):
        if all(_is_name(k) for k in value):
            items = [f'{inner}{k}={format_literal(v, indent + 1)}' for k, v in value.items()]
            return 'dict(\n' + ',\n'.join(items) + ')'
        items = [
            f'{inner}{_str_literal(k)}: {format_literal(v, indent + 1)}' for k, v in value.items()
        ]
        return '{\n' + ',\n'.join(items) + f'\n{pad}}}'
    items = [f'{inner}{format_literal(v, indent + 1)}' for v in value]
    if isinstance(value, tuple):
        return '(\n' + ',\n'.join(items) + (',' if len(value) == 1 else '') + f'\n{pad})'
    return '[\n' + ',\n'.join(items) + f'\n{pad}]'


def _flat(value):
    if isinstance(value, dict):
        if all(_is_name(k) for k in value):
            return 'dict(' + ', '.join(f'{k}={_flat(v)}' for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{_str_literal(k)}: {_flat(v)}' for k, v in value.items()) + '}'
    if isinstance(value, tuple):
        inner = ', '.join(_flat(v) for v in value)
        return f'({inner},)' if len(value) == 1 else f'({inner})'
    if isinstance(value, list):
        return '[' + ', '.join(_flat(v) for v in value) + ']'
    return _str_literal(value)


def _assert_literal_source(text):
    """Refuse any source that is not ``name = literal`` statements with ``dict(...)`` calls."""
    if '{{' in text:
        raise ValueError(f"generated config text holds '{{{{' at offset {text.index('{{')}, which "
                         f"mmengine's Config would substitute before parsing it")
    tree = ast.parse(text)

    def ok(node):
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return isinstance(node.operand, ast.Constant)
        if isinstance(node, (ast.List, ast.Tuple)):
            return all(ok(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            return all(k is not None and ok(k)
                       for k in node.keys) and all(ok(v) for v in node.values)
        if isinstance(node, ast.Call):
            return (isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args
                    and all(kw.arg is not None and ok(kw.value) for kw in node.keywords))
        return False

    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and ok(stmt.value)):
            raise ValueError(f'generated config has a non-literal statement at line '
                             f'{stmt.lineno}: {ast.get_source_segment(text, stmt)!r}')


def set_genotype(cfg: dict, genotype) -> dict:
    """Put the canonical text of ``genotype`` everywhere the SEG101 model reads it."""
    text = str(Genotype.parse(genotype).canonical())
    cfg['genotype'] = text
    model = cfg.get('model')
    if not isinstance(model, dict):
        raise ValueError(f'the candidate template has no model dict (got {model!r})')
    found = False
    for part in ('neck', 'decode_head', 'auxiliary_head'):
        sub = model.get(part)
        subs = sub if isinstance(sub, list) else [sub]
        for s in subs:
            if isinstance(s, dict) and 'genotype' in s:
                s['genotype'] = text
                found = True
    if not found:
        raise ValueError('the candidate template model has no neck/decode_head with a '
                         '"genotype" argument: is it a SEG101 model config?')
    return cfg


def set_data_root(cfg: dict, data_root: str) -> dict:
    """Point every dataloader's dataset (and the top-level ``data_root``) at ``data_root``."""
    if not isinstance(data_root, str) or not data_root:
        raise ValueError(f'data_root must be a non-empty str path, got {data_root!r}')
    cfg['data_root'] = data_root
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            ds = loader['dataset']
            # Wrappers such as RepeatDataset hold the real dataset one level down.
            while 'data_root' not in ds and isinstance(ds.get('dataset'), dict):
                ds = ds['dataset']
            ds['data_root'] = data_root
    return cfg


def render_config(cfg: dict, header: str = '') -> str:
    """Source text of a standalone config holding ``cfg``'s top-level variables."""
    if not isinstance(cfg, dict):
        raise ValueError(f'a config must be a dict of top-level variables, got {cfg!r}')
    for k in cfg:
        if not _is_name(k) or k.startswith('__'):
            raise ValueError(f'top-level config name {k!r} is not a valid variable name')
    _check_literal(cfg)
    lines = []
    for line in header.splitlines():
        # Comment text is shown to readers only; strip anything that could end the comment,
        # and split brace pairs, which mmengine would substitute even inside a comment.
        line = re.sub(r'([{}])(?=[{}])', r'\1 ', line.replace('\r', ' ').replace('\n', ' '))
        lines.append('# ' + line)
    for k, v in cfg.items():
        lines.append(f'{k} = {format_literal(v)}')
    text = '\n'.join(lines) + '\n'
    _assert_literal_source(text)
    return text


def write_config(path, cfg: dict, header: str = '') -> Path:
    """Render ``cfg`` and write it to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    text = render_config(cfg, header)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'{path.name}.{os.getpid()}.tmp')  # two writers never share one
    with open(tmp, 'w') as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def candidate_config(template: dict,
                     genotype,
                     data_root=None,
                     work_dir=None,
                     seed=None,
                     overrides=None,
                     extra_hooks=()) -> dict:
    """The config dict of one candidate: ``template`` with the candidate's own values.

    Args:
        template (dict): A resolved SEG101 training config (plain dict).
        genotype (Genotype | str): The candidate; re-parsed and canonicalised.
        data_root (str, optional): Dataset folder for every dataloader.
        work_dir (str, optional): Written as ``work_dir``.
        seed (int, optional): ``randomness=dict(seed=seed)``.
        overrides (dict, optional): Top-level variables replaced as a whole.
        extra_hooks (list[dict]): Appended to ``custom_hooks``.
    """
    import copy
    cfg = copy.deepcopy(template)
    cfg.pop('_base_', None)
    for k, v in (overrides or {}).items():
        cfg[k] = copy.deepcopy(v)
    set_genotype(cfg, genotype)
    if data_root is not None:
        set_data_root(cfg, str(data_root))
    if work_dir is not None:
        cfg['work_dir'] = str(work_dir)
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f'seed must be an int, got {seed!r}')
        cfg['randomness'] = dict(seed=seed, deterministic=False)
    if extra_hooks:
        cfg['custom_hooks'] = list(cfg.get('custom_hooks') or []) + [dict(h) for h in extra_hooks]
    return cfg
