"""FPS and latency of a segmentor's ``predict`` (the work of
``tools/analysis_tools/benchmark.py``).

As in mmseg's benchmark, each timed step is one ``model(inputs, data_samples, mode='predict')``
call on a batch that the model's data preprocessor has already prepared, so loading and
normalisation are not timed; the first ``warmup`` steps are run but not counted. Unlike mmseg's
(200 images, CUDA only, stopping short on a dataset smaller than that), the number of steps,
the device and the input are chosen: the config's test dataloader, cycled as often as needed, or
random images of one fixed size.
"""
import itertools
import math
import time
from typing import Callable, Iterable, Iterator, Optional, Tuple

import numpy as np

from .common import ToolError


def dataloader_batches(cfg, batch_size: int = 1) -> Iterator[dict]:
    """Batches of the config's ``test_dataloader`` (its pipeline), cycled without end."""
    from mmengine.runner import Runner
    loader_cfg = cfg.test_dataloader.copy()
    loader_cfg['batch_size'] = batch_size
    loader = Runner.build_dataloader(loader_cfg)
    if len(loader) == 0:
        raise ToolError(f'the test dataset of the config is empty '
                        f'(data_root {cfg.test_dataloader.dataset.get("data_root")!r})')
    return itertools.chain.from_iterable(itertools.repeat(loader))


def fixed_size_batches(shape: Tuple[int, int],
                       batch_size: int = 1,
                       seed: int = 0) -> Iterator[dict]:
    """The same batch of random uint8 images of ``shape`` (H, W), without end."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=gen)
        for _ in range(batch_size)
    ]
    return itertools.repeat(dict(inputs=inputs))


def _synchronize(device: str):
    if device.startswith('cuda'):
        import torch
        torch.cuda.synchronize(device)


def time_predict(model,
                 batches: Iterable[dict],
                 num_iters: int = 200,
                 warmup: int = 5,
                 log_interval: int = 50,
                 device: str = 'cpu',
                 clock: Callable[[], float] = time.perf_counter,
                 log: Optional[Callable[[str], None]] = print) -> dict:
    """Time ``num_iters`` predict steps after ``warmup`` untimed ones.

    Args:
        model: An mmseg segmentor in eval mode on ``device``.
        batches: Data dicts as a dataloader yields them (``inputs``, optional
            ``data_samples``); at least ``warmup + num_iters`` are drawn.
        num_iters (int): Timed steps.
        warmup (int): Steps run first and not timed (allocator, cuDNN autotuning).
        log_interval (int): Print the running FPS every this many timed steps.
        device (str): Where the model is; CUDA is synchronised around each step.
        clock: Seconds counter (``time.perf_counter``).
        log: Where progress lines go (``None``: nowhere).

    Returns:
        dict: ``fps`` (images per second over the timed steps), ``latency_ms`` (per image:
        ``mean``, ``median``, ``p90``, ``min``, ``max``), ``images``, ``seconds``.
    """
    import torch
    if num_iters < 1:
        raise ToolError(f'--num-iters must be >= 1, got {num_iters}')
    if warmup < 0:
        raise ToolError(f'--warmup must be >= 0, got {warmup}')
    if log_interval < 1:
        raise ToolError(f'--log-interval must be >= 1, got {log_interval}')
    total_seconds, images, per_image_ms = 0.0, 0, []
    batches = iter(batches)
    for step in range(warmup + num_iters):
        try:
            data = next(batches)
        except StopIteration:
            raise ToolError(f'the input ran out after {step} of {warmup + num_iters} steps')
        with torch.no_grad():
            data = model.data_preprocessor(data, False)
            _synchronize(device)
            start = clock()
            model(data['inputs'], data.get('data_samples'), mode='predict')
            _synchronize(device)
            elapsed = clock() - start
        if step < warmup:
            continue
        batch = len(data['inputs'])
        total_seconds += elapsed
        images += batch
        per_image_ms.append(elapsed / batch * 1e3)
        timed = step + 1 - warmup
        if log is not None and timed % log_interval == 0:
            log(f'Done image [{images:<3}/ {num_iters * batch}], '
                f'fps: {_fps(images, total_seconds):.2f} img / s')
    latency = np.asarray(per_image_ms)
    return dict(
        fps=_fps(images, total_seconds),
        images=images,
        seconds=total_seconds,
        latency_ms=dict(
            mean=float(latency.mean()),
            median=float(np.median(latency)),
            p90=float(np.percentile(latency, 90)),
            min=float(latency.min()),
            max=float(latency.max())))


def _fps(images, seconds):
    return images / seconds if seconds > 0 else math.inf


def benchmark(model,
              make_batches: Callable[[], Iterable[dict]],
              num_iters: int = 200,
              warmup: int = 5,
              log_interval: int = 50,
              repeat_times: int = 1,
              device: str = 'cpu',
              clock: Callable[[], float] = time.perf_counter,
              log: Optional[Callable[[str], None]] = print) -> dict:
    """:func:`time_predict` ``repeat_times`` times, each on fresh batches from
    ``make_batches()``; returns mmseg's summary keys (``overall_fps_<k>``, ``average_fps``,
    ``fps_variance``) beside ``runs`` (each run's full result)."""
    if repeat_times < 1:
        raise ToolError(f'--repeat-times must be >= 1, got {repeat_times}')
    out, runs = {}, []
    for k in range(1, repeat_times + 1):
        run = time_predict(
            model,
            make_batches(),
            num_iters=num_iters,
            warmup=warmup,
            log_interval=log_interval,
            device=device,
            clock=clock,
            log=log)
        runs.append(run)
        out[f'overall_fps_{k}'] = round(run['fps'], 2)
        if log is not None:
            lat = run['latency_ms']
            log(f'Overall fps: {run["fps"]:.2f} img / s; latency per image: mean '
                f'{lat["mean"]:.2f} ms, median {lat["median"]:.2f} ms, p90 {lat["p90"]:.2f} ms\n')
    fps = [r['fps'] for r in runs]
    out['average_fps'] = round(float(np.mean(fps)), 2)
    out['fps_variance'] = round(float(np.var(fps)), 4)
    out['runs'] = runs
    if log is not None:
        log(f'Average fps of {repeat_times} evaluations: {out["average_fps"]}')
        log(f'The variance of {repeat_times} evaluations: {out["fps_variance"]}')
    return out
