"""Backbone weights taken out of a trained segmentor, for ``init_cfg=dict(type='Pretrained')``.

A search or a benchmark on a CPU cannot download ImageNet weights, and training each candidate
from scratch takes far longer than the few minutes a candidate may cost. The sanctioned route
is a backbone trained once in-house: train a segmentor on the training split, keep only its
``backbone.*`` weights, and start every candidate from that file through
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')``.

The file holds tensors and plain metadata only, so it loads with ``torch.load(...,
weights_only=True)``. Its identity is the SHA-256 of the weights themselves (names, dtypes,
shapes and values, in name order; ``torch.save`` does not write the same bytes twice for the
same tensors, so the file's own hash is not a stable name). Both hashes are written beside it
(``<file>.json``), and the weights hash belongs in every result that starts from it.
"""
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

BACKBONE_PREFIX = 'backbone.'


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for block in iter(lambda: fh.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(state_dict) -> str:
    """Hex SHA-256 of a state dict's names, dtypes, shapes and values, in name order."""
    import torch
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        if tensor.numel():
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_backbone_record(path) -> dict:
    """The record written beside a backbone file, with its weights hash checked.

    Raises:
        FileNotFoundError: The file or its ``.json`` record is missing.
        ValueError: The weights no longer match the recorded hash.
    """
    import torch
    path = Path(path)
    sidecar = path.with_name(path.name + '.json')
    for p in (path, sidecar):
        if not p.is_file():
            raise FileNotFoundError(f'backbone file not found: {p}')
    record = json.loads(sidecar.read_text())
    state = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    actual = weights_sha256(state)
    if actual != record.get('weights_sha256'):
        raise ValueError(f'{path}: weights hash {actual[:12]} does not match the recorded '
                         f'{str(record.get("weights_sha256"))[:12]} in {sidecar}')
    return record


def extract_backbone(checkpoint,
                     out,
                     meta: Optional[dict] = None,
                     prefix: str = BACKBONE_PREFIX) -> dict:
    """Write the ``prefix`` weights of an mmengine checkpoint to ``out``; return its record.

    Args:
        checkpoint (str | Path): A checkpoint written by mmengine's ``CheckpointHook`` (or any
            file whose ``state_dict`` maps ``backbone.*`` names to tensors).
        out (str | Path): The weights file to write (through a temporary name and a rename).
        meta (dict, optional): JSON-serialisable facts to record (config, seed, iterations).
        prefix (str): The key prefix of the backbone in the segmentor's state dict; kept in
            the output, so that ``init_cfg`` uses the same ``prefix``.

    Returns:
        dict: ``weights_sha256`` (the identity of the weights), ``sha256`` (of the file),
        ``path``, ``tensors``, ``params`` and ``meta``, also written to ``<out>.json``.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        ValueError: It holds no tensor under ``prefix``.
    """
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_file():
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    loaded = CheckpointLoader.load_checkpoint(str(checkpoint), map_location='cpu')
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
    weights = {
        k: v.detach().clone()
        for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)
    }
    if not weights:
        raise ValueError(f'{checkpoint} holds no tensor named {prefix!r}...; expected a '
                         'segmentor checkpoint with a backbone')
    meta = dict(meta or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f'.{out.name}.{os.getpid()}.tmp')
    torch.save(dict(state_dict=weights, meta=meta), tmp)
    os.replace(tmp, out)
    record = dict(
        path=str(out),
        sha256=file_sha256(out),
        weights_sha256=weights_sha256(weights),
        tensors=len(weights),
        params=int(
            sum(v.numel() for k, v in weights.items()
                if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))),
        meta=meta)
    sidecar = out.with_name(out.name + '.json')
    tmp = sidecar.with_name(f'.{sidecar.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + '\n')
    os.replace(tmp, sidecar)
    return record


def backbone_init_cfg(path, prefix: str = BACKBONE_PREFIX) -> dict:
    """The ``model.backbone.init_cfg`` that starts a backbone from an extracted file."""
    return dict(type='Pretrained', checkpoint=str(path), prefix=prefix)


def pretrained_weights_sha256(init_cfg) -> Optional[str]:
    """The weights hash of the local file a ``Pretrained`` ``init_cfg`` starts from.

    Hashes the checkpoint's tensors under the ``init_cfg``'s ``prefix`` (all of them without
    one), as :func:`extract_backbone` names its output. None when ``init_cfg`` starts from no
    local file (random init, a URL or another initialiser).
    """
    import torch
    if not isinstance(init_cfg, dict) or init_cfg.get('type') != 'Pretrained':
        return None
    checkpoint = init_cfg.get('checkpoint')
    if not isinstance(checkpoint, (str, Path)):
        return None
    path = Path(os.path.expanduser(str(checkpoint)))
    if not path.is_file():
        return None
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
    prefix = init_cfg.get('prefix') or ''
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    return weights_sha256({
        k: v
        for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)
    })
