"""Candidate templates: a SEG101 training config read as a plain dict, cut to a search's
training length."""
from mmengine.config import Config


def load_template(path, overrides=None, iters=None) -> dict:
    """The resolved config ``path`` as a plain dict.

    Args:
        path (str): A SEG101 training config file.
        overrides (dict, optional): ``--cfg-options``-style dotted keys applied to it.
        iters (int, optional): Training iterations: ``max_iters`` and ``val_interval`` are set
            to it, schedulers that span the whole run end with it and shorter ones (warmup)
            are clipped to it.
    """
    import copy
    cfg = Config.fromfile(path)
    if overrides:
        # mmengine pops ``_delete_`` out of the dicts it merges: merge a copy, so that the
        # caller's overrides hold it for the next load
        cfg.merge_from_dict(copy.deepcopy(dict(overrides)))
    cfg = cfg.to_dict()
    if iters is not None:
        if not isinstance(iters, int) or iters < 1:
            raise ValueError(f'candidate iters must be a positive int, got {iters!r}')
        train_cfg = cfg.get('train_cfg') or {}
        old = train_cfg.get('max_iters')
        if old is None:
            raise ValueError(f'candidate iters needs an iteration-based template train_cfg, '
                             f'got {train_cfg!r}')
        train_cfg.update(max_iters=iters, val_interval=iters)
        for sch in cfg.get('param_scheduler') or []:
            # Schedulers that span the whole run end with it; shorter ones (warmup) are clipped.
            end = sch.get('end')
            if end is not None and (end >= old or end > iters):
                sch['end'] = iters
    return cfg
