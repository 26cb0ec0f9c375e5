"""docs/study.md and its figures from a SEG101-Bench file, by one command
(``tools/analysis_tools/nasbench_study.py``). Every number in the page comes from the file."""
import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np

from seg101_mm.proxies.correlation import PAPER_NUM_ARCHITECTURES, PAPER_PROXY_BATCH, spans_decades
from . import study
from .table import NASBench


def _fmt(v, digits=2):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '-' if v is None else ('inf' if v == math.inf else 'nan')
    return f'{v:.{digits}f}'


def _ci(pair, digits=2):
    lo, hi = pair
    return f'[{_fmt(lo, digits)}, {_fmt(hi, digits)}]'


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + f'.{os.getpid()}.tmp.png')
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    _plt().close(fig)
    os.replace(tmp, path)
    return path


def plot_scatter(bench: NASBench, path):
    plt = _plt()
    t = study.table(bench)
    names = list(t['columns'])
    cols = 4
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        x = t['columns'][name]
        ok = np.isfinite(x)
        ax.scatter(x[ok], t['target'][ok], s=8, alpha=0.7)
        if spans_decades(x[ok]):
            ax.set_xscale('log')
        elif ok.any() and np.nanmin(np.abs(x[ok])) > 0 and spans_decades(np.abs(x[ok])):
            ax.set_xscale('symlog')
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis('off')
    fig.supylabel('val mIoU (%)')
    return _save(fig, path)


def plot_early(rows, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    rs = [r for r in rows if r['against'] == 'final val']
    x = [r['fraction'] for r in rs]
    y = [r['spearman'] for r in rs]
    lo = [r['spearman'] - r['spearman_ci'][0] for r in rs]
    hi = [r['spearman_ci'][1] - r['spearman'] for r in rs]
    ax.errorbar(x, y, yerr=[lo, hi], marker='o', capsize=3)
    ax.set_xlabel('fraction of training')
    ax.set_ylabel('Spearman with final val mIoU')
    ax.set_ylim(-1, 1.05)
    ax.axhline(0, color='grey', lw=0.5)
    return _save(fig, path)


def plot_simulation(sim, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, m in sim['methods'].items():
        mean = np.asarray(m['best_so_far_mean'])
        std = np.asarray(m['best_so_far_std'])
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, label=name)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.axhline(
        sim['threshold'],
        color='grey',
        ls='--',
        lw=0.8,
        label=f'top {sim["top_fraction"]:.0%} of the table')
    ax.set_xlabel('architectures trained')
    ax.set_ylabel('best val mIoU so far (%)')
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_predictor(rows, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for feats in (False, True):
        rs = sorted([r for r in rows if r['features'] == feats], key=lambda r: r['train_size'])
        if rs:
            ax.errorbar([r['train_size'] for r in rs], [r['spearman_mean'] for r in rs],
                        yerr=[r['spearman_std'] for r in rs],
                        marker='o',
                        capsize=3,
                        label='GIN + proxy features' if feats else 'GIN')
    ax.set_xlabel('training architectures')
    ax.set_ylabel('Spearman on held-out entries')
    ax.axhline(0, color='grey', lw=0.5)
    ax.legend(fontsize=8)
    return _save(fig, path)


def run_study(bench: NASBench,
              num_bootstrap=1000,
              sim_seeds=100,
              sim_epochs=200,
              predictor_repeats=5,
              predictor_epochs=300,
              reproducibility: Optional[dict] = None,
              replicate_dirs=(),
              progress=None) -> dict:
    """Every analysis of the study, as one JSON-able dict. ``reproducibility`` is the retrain
    file (its pooled seed SD is the simulation's regret unit); ``replicate_dirs`` are
    committed search directories whose random first round replicates entries on another
    backbone."""

    def step(msg):
        if progress:
            progress(msg)

    nb = num_bootstrap
    step('correlations')
    corr = study.correlations(bench, num_bootstrap=nb)
    test_corr = study.correlations(bench, split='test', num_bootstrap=nb)
    step('against the size baselines')
    paired = study.paired_vs_baselines(bench, num_bootstrap=nb)
    partial = study.partial_correlations(bench, num_bootstrap=nb)
    heads = study.within_head(bench, num_bootstrap=nb)
    targets = study.target_correlations(bench, num_bootstrap=nb)
    step('early vs final')
    early = study.early_vs_final(bench, num_bootstrap=nb)
    step('predictor')
    feats = [n for n in bench.proxy_names]
    pred = study.predictor_study(
        bench, repeats=predictor_repeats, features=feats, epochs=predictor_epochs)
    trivial = study.trivial_rankers(bench, repeats=predictor_repeats)
    step('search simulation')
    noise = study.pooled_seed_sd(reproducibility)
    sim = study.simulate_search(bench, seeds=sim_seeds, epochs=sim_epochs, seed_sd=noise['sd'])
    out = dict(
        n=len(bench),
        failed=len(bench.failed),
        sign_convention=study.SIGN_CONVENTION,
        scope=study.scope(bench),
        cross_backbone=study.cross_backbone(bench, replicate_dirs),
        all_background=study.all_background(bench),
        seed_noise=noise,
        correlations=corr,
        correlations_test=test_corr,
        targets=targets,
        paired=paired,
        partial=partial,
        within_head=heads,
        head_vs_params=study.head_vs_params(bench),
        beats_baselines=study.beats_baselines(corr),
        beats_baselines_paired=study.beats_baselines_paired(paired),
        early_vs_final=early,
        predictor=pred,
        trivial_rankers=trivial,
        simulation=sim)
    if reproducibility:
        out['reproducibility'] = reproducibility
    return out


def write_study(bench_path,
                out_md='docs/study.md',
                fig_dir='docs/figures/study',
                results_json: Optional[str] = None,
                replicate_dirs=(),
                **kwargs) -> dict:
    """Run the study on ``bench_path`` and write the page, its PNGs and a JSON of the numbers."""
    from .table import load_nasbench
    bench = load_nasbench(bench_path)
    retrained = retrain_file(bench_path)
    rep = json.loads(retrained.read_text()) if retrained.is_file() else None
    res = run_study(bench, reproducibility=rep, replicate_dirs=replicate_dirs, **kwargs)
    fig_dir = Path(fig_dir)
    figs = dict(
        scatter=plot_scatter(bench, fig_dir / 'proxies_vs_miou.png'),
        early=plot_early(res['early_vs_final'], fig_dir / 'early_vs_final.png'),
        predictor=plot_predictor(res['predictor'], fig_dir / 'predictor_rho.png'),
        simulation=plot_simulation(res['simulation'], fig_dir / 'search_simulation.png'))
    results_json = Path(results_json or fig_dir / 'study.json')
    tmp = results_json.with_name(results_json.name + '.tmp')
    tmp.write_text(json.dumps(res, indent=1, default=float))
    os.replace(tmp, results_json)
    md = render(bench, res, figs, Path(out_md).parent, bench_path, results_json)
    tmp = Path(str(out_md) + '.tmp')
    tmp.write_text(md)
    os.replace(tmp, out_md)
    return res


def retrain_file(bench_path) -> Path:
    """Where ``tools/analysis_tools/retrain_nasbench.py`` writes a file's retrainings."""
    bench_path = Path(bench_path)
    return bench_path.with_name(bench_path.stem + '_retrain.json')


def reproducibility_lines(rep: Optional[dict], bench_path) -> list:
    """The 'Reproducibility' section from a retrain file (its absence stated)."""
    lines = ['## Reproducibility', '']
    cmd = (f'`python tools/analysis_tools/retrain_nasbench.py {bench_path} --entries ID ... '
           '--seeds 0 1 2`')
    if not rep:
        return lines + [f'No entry has been retrained yet ({cmd}).', '']
    lines += [
        f'Entries retrained from the file alone ({cmd}): the genotype, the recipe its meta '
        'names and the recorded training seed, plus other seeds for the seed noise. An entry '
        f'is reproduced when the recorded seed gives a val mIoU within '
        f'{rep.get("noise_sigmas", 2):g} standard deviations (over the seeds) of the '
        'recorded value.', '',
        '| entry | recorded val mIoU | recorded seed again | every seed | mean +- std | '
        'gap | reproduced |', '|---|---|---|---|---|---|---|'
    ]
    for s in rep.get('summary') or []:
        values = ', '.join(_fmt(v) for v in s['values'])
        seeds = ', '.join(str(x) for x in s['seeds'])
        verdict = {True: 'yes', False: 'no', None: 'n/a'}[s.get('within_noise')]
        lines.append(f'| {s["id"]} | {_fmt(s["recorded"])} | '
                     f'{_fmt(s.get("recorded_seed_value"))} | {values} (seeds {seeds}) | '
                     f'{_fmt(s["mean"])} +- {_fmt(s["std"])} | {_fmt(s["gap"])} | '
                     f'{verdict} |')
    hashes = sorted({r.get('backbone_sha256') or 'not recorded' for r in rep.get('rows') or []})
    lines += [
        '', 'Backbone of the retrainings: ' + ', '.join(f'`{h[:12]}`' if h != 'not recorded' else h
                                                        for h in hashes) + '.', ''
    ]
    return lines


def _rel(path, base):
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def correlation_markdown(rows) -> str:
    lines = [
        '| score | kind | n | Spearman rho [95 % CI] | Kendall tau [95 % CI] | '
        'precision at top-k (k) | paper rho (498 archs) |', '|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        lines.append(f'| {r["name"]} | {r["kind"]} | {r["n"]} | {_fmt(r["spearman"])} '
                     f'{_ci(r["spearman_ci"])} | {_fmt(r["kendall"])} {_ci(r["kendall_ci"])} | '
                     f'{_fmt(r["precision_at_top_k"])} ({r["top_k"]}) | '
                     f'{_fmt(r["paper_spearman"])} |')
    return '\n'.join(lines)


def _cost_line(bench: NASBench, prox: dict) -> str:
    proxy_s = [e['proxy_seconds'] for e in bench if e.get('proxy_seconds') is not None]
    train_s = [e['train_seconds'] for e in bench if e.get('train_seconds') is not None]
    text = '- Cost per network (medians):'
    if train_s:
        text += (f' training {_fmt(float(np.median(train_s)), 0)} s on one core '
                 f'(range {_fmt(min(train_s), 0)} to {_fmt(max(train_s), 0)} s)')
    if proxy_s:
        size = prox.get('batch_size') or PAPER_PROXY_BATCH
        text += (f'; every proxy together on the batch of {size} '
                 f'{_fmt(float(np.median(proxy_s)), 0)} s')
        if size < PAPER_PROXY_BATCH:
            text += (f'. The paper scores on {PAPER_PROXY_BATCH} tiles: that would cost about '
                     f'{PAPER_PROXY_BATCH / size:.0f} times as much per network')
        elif train_s:
            text += (f', {float(np.median(proxy_s)) / float(np.median(train_s)):.0%} of a '
                     'training')
    return text + '.'


def _split_text(split: Optional[dict], name: str) -> str:
    """'on 20 of the val tiles (indices 0, 4, ..., 76), their central 256x256' and the like."""
    split = split or {}
    idx = split.get('indices')
    if isinstance(idx, list) and idx:
        shown = ', '.join(map(str, idx[:2])) + (f', ..., {idx[-1]}' if len(idx) > 2 else '')
        text = f'on {len(idx)} of the {name} tiles (indices {shown})'
    else:
        text = f'on every {name} tile'
    crop = split.get('crop')
    if crop:
        side = crop if isinstance(crop, int) else 'x'.join(map(str, crop))
        side = f'{side}x{side}' if isinstance(crop, int) else side
        text += f', their central {side}'
    return text


def _backbone_line(bench: NASBench) -> str:
    """Which in-house backbone files (by weights hash) the entries started from."""
    counts = {}
    for e in bench:
        sha = e.get('backbone_sha256') or 'not recorded'
        counts[sha] = counts.get(sha, 0) + 1
    parts = [
        f'`{k[:12]}` ({v} entries)' if k != 'not recorded' else f'not recorded ({v})'
        for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
    ]
    return ('- Backbone weights (SHA-256 of the weights each entry started from, '
            '`backbone_sha256`): ' + ', '.join(parts) + '.')


def _signed(v, digits=2):
    return _fmt(v, digits)


def sign_lines(res: dict) -> list:
    return ['## Sign convention', '', res['sign_convention'], '']


def scope_lines(res: dict, bench: NASBench) -> list:
    """The scope of the table and the cross-backbone replicate."""
    sc = res['scope']
    shas = ', '.join(f'`{s[:12]}`' for s in sc['backbones']) or 'none recorded'
    seeds = ', '.join(map(str, sc['training_seeds'])) or 'not recorded'
    val, test = sc['val'], sc['test']
    crop = f'{val["crop"]}x{val["crop"]} crops' if val['crop'] else 'whole tiles'
    train = (f'{sc["train_images"]} training images ({sc["train_tiles"]} tiles in '
             f'`{sc["data_root"]}` on the machine that generated this page)'
             if sc['train_images'] else 'the training split (not on the machine that '
             'generated this page, so not counted)')
    lines = [
        '## Scope', '',
        'One table measures one setting. What is fixed across its entries:', '',
        f'- One backbone checkpoint: weights {shas} for every entry that records it '
        f'({sc["backbone_not_recorded"]} entries predate the record).',
        f'- One data order and one initialisation of the new layers: training seed {seeds} '
        'for every entry.',
        f'- Training on {train}.',
        f'- Validation on {val["count"]} val {crop}; test on {test["count"]} test tiles '
        f'({"whole" if not test["crop"] else test["crop"]}).', ''
    ]
    return lines + cross_backbone_lines(res.get('cross_backbone') or {})


def cross_backbone_lines(cb: dict) -> list:
    lines = ['### Cross-backbone replicate', '']
    if not cb.get('metrics'):
        return lines + ['No committed search replicates entries of this table.', '']
    lines += [
        f'The random first round (round {cb["round"]}) of the committed real-tile searches '
        'used the same recipe and training seed as the benchmark entries of the same genotypes, '
        'but another in-house backbone. Each leaderboard ranks by one val metric; the '
        'benchmark entries are ranked by the same metric.', '',
        '| metric | search | its backbone | n (per head type) | Spearman rho with the '
        'benchmark | head-type effect, benchmark | head-type effect, replicate |',
        '|---|---|---|---|---|---|---|'
    ]
    for metric, m in cb['metrics'].items():
        sha = f'`{m["backbone_sha256"][:12]}`' if m.get('backbone_sha256') else 'not recorded'
        per = ', '.join(f'{h} {c}' for h, c in m['heads'].items())
        eff = m['head_effect']
        lines.append(f'| {metric} | `{m["source"]}` | {sha} | {m["n"]} ({per}) | '
                     f'{_signed(m["spearman"])} | {_signed(eff["benchmark"])} | '
                     f'{_signed(eff["replicate"])} |')
    return lines + [
        '', 'The head-type effect is the mean of the concat_head entries minus the mean of '
        'the global_se_head ones (metric points). A search leaderboard that records no '
        'backbone hash shares the other search\'s backbone (docs/search.md).', ''
    ]


def targets_lines(res: dict) -> list:
    """The all-background rows and the correlation of every score with every target."""
    ab = res['all_background']
    sh = ab['shares']
    lines = [
        '## Baselines and targets', '',
        'An all-background prediction scores background IoU = pixel accuracy = 1 - r and '
        f'{ab["foreground"]} IoU = F1 = 0, where r is the {ab["foreground"]} share of the '
        'labelled pixels. The file holds no pixel counts; r comes from the entries\' own '
        'metrics (precision P, recall R and pixel accuracy PA give r = (1 - PA) / '
        '(1 - R (2 - 1/P)); the median over every prediction of the split): val r = '
        f'{_fmt(100 * sh["val"]["fraction"], 3)} % ({sh["val"]["n"]} predictions, the final '
        f'ones and every curve point), test r = {_fmt(100 * sh["test"]["fraction"], 3)} % '
        f'({sh["test"]["n"]}).', '',
        '| target | all-background | entries below it | entries equal to it | median entry |',
        '|---|---|---|---|---|'
    ]
    for r in ab['rows']:
        lines.append(f'| {r["target"]} | {_fmt(r["value"])} | {r["below"]} of {r["n"]} | '
                     f'{r["equal"]} | {_fmt(r["median"])} |')
    tc = res['targets']
    lines += [
        '', 'Signed Spearman rho of every score with every target (* where the bootstrap '
        '95 % interval excludes 0). Road F1 is a monotone function of road IoU, so their '
        'columns agree; the mean of the last two validations is a sensitivity target for the '
        'noise of one checkpoint.', '',
        '| score | kind | ' + ' | '.join(tc['targets']) + ' |',
        '|---|---|' + '---|' * len(tc['targets'])
    ]
    for r in tc['rows']:
        cells = []
        for t in tc['targets']:
            v = r['targets'].get(t) or {}
            lo, hi = v.get('ci', [math.nan, math.nan])
            star = '*' if lo * hi > 0 else ''
            cells.append(_signed(v.get('spearman', math.nan)) + star)
        lines.append(f'| {r["name"]} | {r["kind"]} | ' + ' | '.join(cells) + ' |')
    return lines + ['']


def size_baseline_lines(res: dict) -> list:
    """The paired bootstrap, the partial and the within-head correlations."""
    paired = res['paired']
    n = paired[0]['n'] if paired else 0
    lines = [
        '## Proxies against the size baselines', '',
        f'Paired bootstrap of |rho_score| - |rho_baseline| with val mIoU: every one of the '
        f'resamples of the {n} architectures gives every score\'s and both baselines\' rho '
        'at once (shared resamples), and the 95 % interval is the percentile interval of the '
        'difference. A score beats a baseline when the interval lies above 0.', '',
        '| score | kind | abs(rho) | minus abs(rho params) [95 % CI] | minus abs(rho FLOPs) '
        '[95 % CI] | share of resamples above params |', '|---|---|---|---|---|---|'
    ]
    for r in paired:
        p, f = r['vs']['params'], r['vs']['flops']
        lines.append(f'| {r["name"]} | {r["kind"]} | {_fmt(r["abs_spearman"])} | '
                     f'{_signed(p["diff"])} {_ci(p["ci"])} | {_signed(f["diff"])} '
                     f'{_ci(f["ci"])} | {p["share_above"]:.0%} |')
    beats = res['beats_baselines_paired']
    lines += [
        '', 'Scores that beat both baselines: ' + (', '.join(beats) if beats else 'none') + '.',
        '', 'Partial Spearman rho with val mIoU given log params (and log FLOPs): the Pearson '
        'correlation of the residual ranks of the score and of val mIoU after a least-squares '
        'fit (with intercept) on the ranks of the covariates; on ranks the log changes '
        'nothing. Intervals from the same kind of shared bootstrap.', '',
        '| score | kind | given params [95 % CI] | given params and FLOPs [95 % CI] |',
        '|---|---|---|---|'
    ]
    for r in res['partial']:
        a, b = r['partial']['params'], r['partial']['params+flops']
        lines.append(f'| {r["name"]} | {r["kind"]} | {_signed(a["rho"])} {_ci(a["ci"])} | '
                     f'{_signed(b["rho"])} {_ci(b["ci"])} |')
    return lines + [''] + within_head_lines(res['within_head'], res['head_vs_params'])


def within_head_lines(rows: list, head_vs_params: float) -> list:
    heads = sorted(rows[0]['heads']) if rows else []
    ns = {h: rows[0]['heads'][h]['n'] for h in heads}
    lines = [
        '### Within each head type', '',
        f'Size and head type are confounded (Spearman rho of {study.HEAD_SCORE_NAME} with params '
        f'{_signed(head_vs_params)}), so the signed Spearman rho with val mIoU within each '
        'head type (the genotype\'s `hm`), with bootstrap 95 % intervals:', '',
        '| score | kind | ' + ' | '.join(f'{h} (n = {ns[h]})' for h in heads) + ' |',
        '|---|---|' + '---|' * len(heads)
    ]
    for r in rows:
        cells = [f'{_signed(r["heads"][h]["spearman"])} {_ci(r["heads"][h]["ci"])}'
                 for h in heads]
        lines.append(f'| {r["name"]} | {r["kind"]} | ' + ' | '.join(cells) + ' |')
    return lines + ['']


def predictor_lines(res: dict, figs: dict, md_dir) -> list:
    lines = [
        '## The NPENAS predictor on real data', '',
        'The GIN predictor of NPENAS-NP trained on a random subset of the entries and scored '
        'by its Spearman rho on held-out entries (the same held-out set for every size within '
        'a repeat), with and without the proxies as extra inputs (signed log magnitudes, '
        'standardised on the training set). The trivial rankers see the same splits: params '
        'and FLOPs with the sign of their rho on the training entries, and the head type '
        'ranked by its mean val mIoU on the training entries (direction: how often each sign '
        'or head came first over the repeats).', '',
        '| ranker | training architectures | proxy features | held out | repeats | Spearman rho '
        '(mean +- std) | direction |', '|---|---|---|---|---|---|---|'
    ]
    rows = [dict(r, ranker='GIN predictor') for r in res['predictor']]
    rows += [dict(r, features=False) for r in res.get('trivial_rankers') or []]
    rows.sort(key=lambda r: (r['train_size'], r['ranker'] != 'GIN predictor', r['ranker']))
    for r in rows:
        size = f'{r["train_size"]}' + (' (all but held out)' if r['all_but_held_out'] else '')
        direction = ', '.join(f'{k} {v}/{r["repeats"]}'
                              for k, v in (r.get('directions') or {}).items()) or '-'
        feats = 'yes' if r['features'] else 'no' if r['ranker'] == 'GIN predictor' else '-'
        lines.append(f'| {r["ranker"]} | {size} | {feats} | {r["held_out"]} | {r["repeats"]} | '
                     f'{_signed(r["spearman_mean"])} +- {_fmt(r["spearman_std"])} | '
                     f'{direction} |')
    return lines + ['', f'![predictor]({_rel(figs["predictor"], md_dir)})', '']


def simulation_lines(res: dict, figs: dict, md_dir) -> list:
    sim = res['simulation']
    noise = res.get('seed_noise') or {}
    unit = sim['regret_unit']
    ks = sim['ks']
    unit_text = (f'the pooled seed SD of the retrain file, {_fmt(sim["seed_sd"])} mIoU points '
                 f'({noise.get("dof")} degrees of freedom over {noise.get("entries")} entries)'
                 if sim['seed_sd'] else 'mIoU points (no retrain file, so no seed SD)')
    lines = [
        '## Search simulation', '',
        f'Pool-based search on the table over {sim["seeds"]} seeds: each method picks the order '
        f'in which the {sim["n"]} entries are trained. Seeds are paired: one seed draws one '
        'random permutation of the table that every method shares. Random trains in its order; '
        f'NPENAS-NP and the head-type order start from its first {sim["num_init"]} entries; '
        'the rankings break ties by it. NPENAS-NP then trains, every round, the '
        f'{sim["top_k"]} entries its predictor (refitted on what is trained) ranks best; the '
        'pool stands in for its mutation. Proxy ranking trains in the order of '
        f'`{sim["proxy"]}` (signs of the convention above); the -params order smallest first '
        '(the direction this table shows, so an in-sample baseline); the head-type order, '
        'after the initial draws, the next entry of the head type whose trained entries score '
        f'higher on average. The top {sim["top_fraction"]:.0%} of the table are the '
        f'{sim["n_top"]} entries with val mIoU >= {_fmt(sim["threshold"])} %; they span '
        f'{_fmt(sim["top_span"])} {unit} below the best ({_fmt(sim["best"])} %). A ranking '
        'that draws nothing at random (proxy, -params) is one order of the table: its row is '
        'one outcome, not a spread over seeds (only its ties vary), so a good row there says '
        'where this table\'s best entries fall in that order, not how the ranking generalises.',
        '',
        f'Regret = (the table\'s best - the best trained so far) in units of {unit_text}: '
        'mean over seeds after k trainings, and P(T <= k), the share of seeds that reach the '
        'top within k trainings.', '',
        '| method | ' + ' | '.join(f'regret at {k}' for k in ks) + ' | ' +
        ' | '.join(f'P(T <= {k})' for k in ks) + ' | median T (quartiles) | reaches the top | '
        'paired against random: sooner / same / later |',
        '|---|' + '---|' * (2 * len(ks) + 3)
    ]
    for name, m in sim['methods'].items():
        q = m['trainings_to_top_q']
        vr = m['vs_random']
        cells = [_fmt(_at(m['regret_at'], k)) for k in ks]
        cells += [f'{_at(m["p_top_within"], k):.0%}' for k in ks]
        lines.append(f'| {name} | ' + ' | '.join(cells) +
                     f' | {_fmt(m["trainings_to_top_median"], 1)} ({_fmt(q[0], 1)}, '
                     f'{_fmt(q[1], 1)}) | {m["reached_top"]:.0%} | {vr["sooner"]:.0%} / '
                     f'{vr["same"]:.0%} / {vr["later"]:.0%} |')
    return lines + ['', f'![search simulation]({_rel(figs["simulation"], md_dir)})', '']


def _at(d: dict, k):
    """``d[k]`` for int keys, also after a JSON round trip (string keys)."""
    return d[k] if k in d else d[str(k)]


def summary_extra_lines(res: dict) -> list:
    """Summary bullets of the baselines, the confound and the replicate."""
    out = []
    ab = next((r for r in res['all_background']['rows'] if r['target'] == 'val mIoU'), None)
    if ab:
        out.append(f'- {ab["below"]} of {ab["n"]} entries score below the val mIoU of an '
                   f'all-background prediction ({_fmt(ab["value"])}).')
    part = {r['name']: r['partial'] for r in res['partial']}
    best = max(part, key=lambda n: abs(part[n]['params']['rho']), default=None)
    if best is not None:
        p = part[best]['params']
        out.append(f'- Size and head type are one variable (Spearman rho of head type with '
                   f'params {_signed(res["head_vs_params"])}). Given log params, the largest '
                   f'partial rho is {best}\'s, {_signed(p["rho"])} {_ci(p["ci"])}.')
    for metric, m in ((res.get('cross_backbone') or {}).get('metrics') or {}).items():
        out.append(f'- Cross-backbone replicate ({m["n"]} genotypes, another backbone): '
                   f'Spearman {_signed(m["spearman"])} on val {metric}.')
    return out


def summary_lines(bench: NASBench, res: dict) -> list:
    """The page's summary bullets (after its first, the table's range)."""
    data = bench.meta.get('data', {})
    sim = res['simulation']
    corr = res['correlations']
    best = max((r for r in corr if r['kind'] != 'baseline' and math.isfinite(r['spearman'])),
               key=lambda r: abs(r['spearman']),
               default=None)
    base = {r['name']: r for r in corr if r['kind'] == 'baseline'}
    beats = res.get('beats_baselines_paired', res['beats_baselines'])
    early = [r for r in res['early_vs_final'] if r['against'] == 'final val']
    vt = [r for r in res['early_vs_final'] if r['against'] == 'test']
    lines = []
    if best is not None:
        lines.append(f'- The strongest score is **{best["name"]}**: Spearman '
                     f'{_fmt(best["spearman"])} {_ci(best["spearman_ci"])}. Parameter count: '
                     f'{_fmt(base.get("params", {}).get("spearman"))}, FLOPs: '
                     f'{_fmt(base.get("flops", {}).get("spearman"))}.')
    lines.append('- ' + (f'Scores that beat both size baselines (paired bootstrap of |rho| - '
                         f'|rho_baseline| above 0): {", ".join(beats)}.'
                         if beats else 'No proxy or ensemble beats the size baselines with '
                         'confidence: no paired 95 % interval of |rho| - |rho_params| and '
                         '|rho| - |rho_FLOPs| lies above 0.'))
    lines += summary_extra_lines(res)
    if early:
        lines.append('- Short training: val mIoU after ' +
                     ', '.join(f'{r["fraction"]:.0%} of training has rho '
                               f'{_fmt(r["spearman"])}'
                               for r in early[:-1]) + ' with the final val mIoU.')
    if vt:
        lines.append(f'- Final val mIoU ({_split_text(data.get("val"), "val")}) against test '
                     f'mIoU ({_split_text(data.get("test"), "test")}): rho '
                     f'{_fmt(vt[0]["spearman"])} {_ci(vt[0]["spearman_ci"])}.')
    sm = sim['methods']
    k = 10 if 10 in sim['ks'] else sim['ks'][-1] if sim['ks'] else None
    lines.append('- Search simulation (paired seeds; median trainings to reach the table\'s '
                 f'top {sim["top_fraction"]:.0%}' + (f', and P(T <= {k})' if k else '') +
                 f', {sim["seeds"]} seeds): ' +
                 '; '.join(f'{n} {_fmt(v["trainings_to_top_median"], 1)}' +
                           (f' ({_at(v["p_top_within"], k):.0%})' if k else '')
                           for n, v in sm.items()) + '.')
    lines.append(f'- The paper\'s numbers come from {PAPER_NUM_ARCHITECTURES} architectures of '
                 f'one search trajectory, trained to convergence; these come from '
                 f'{len(bench)} uniform samples under a short CPU protocol. The intervals say '
                 f'how far a small table can be trusted.')
    return lines


def protocol_lines(bench: NASBench, res: dict, bench_path) -> list:
    """The protocol, the sign convention, the scope, the file and its build."""
    meta = bench.meta
    proto = meta.get('protocol', {})
    data = meta.get('data', {})
    prox = meta.get('proxies') or {}
    first = (bench.curve_iters or [proto.get('val_interval') or 1])[0]
    lines = []
    lines += [
        '',
        '## The protocol',
        '',
        f'- Candidate recipe: `{proto.get("candidate_template")}`: {proto.get("max_iters")} '
        f'iterations, validated every {proto.get("val_interval")}; every entry starts from '
        'the same backbone trained in-house on the train split (docs/datasets.md, '
        '\'The CPU protocol\'); neck and head are randomly initialised.',
        f'- Data: `{data.get("data_root")}` ({data.get("dataset")}). Validation '
        f'{_split_text(data.get("val"), "val")} at every validation; test '
        f'{_split_text(data.get("test"), "test")}, once, after training.',
        _backbone_line(bench),
        f'- Sampling: `{meta.get("strategy", {}).get("type")}` with seed '
        f'{meta.get("seeds", {}).get("sampling")}, rounds of '
        f'{meta.get("strategy", {}).get("batch_size")}; training seed '
        f'{meta.get("seeds", {}).get("training")}.',
        f'- Proxies: {", ".join(prox.get("names", []))}; on one batch of '
        f'{prox.get("batch_size")} augmented training tiles (seed {prox.get("seed")}) in '
        f'chunks of {prox.get("chunk_size")}, at random initialisation '
        f'({prox.get("init")}), in {prox.get("mode")}.',
        _cost_line(bench, prox),
        f'- Search config: `{meta.get("search_config")}`; software: '
        f'{", ".join(f"{k} {v}" for k, v in (meta.get("software") or {}).items())}.',
        '',
    ]
    lines += sign_lines(res) + scope_lines(res, bench)
    lines += [
        '## The benchmark file',
        '',
        f'`{bench_path}` is one JSON object: `meta` (the settings above), `entries` (canonical '
        'genotype key -> `genotype`, `id`, `val`, `curve` (metrics at each validation), `test`, '
        '`params`, `flops`, `train_seconds`, `proxies`, `proxy_seconds`) and `failed`. Read it '
        'with the loader:',
        '',
        '```python',
        'from seg101_mm.nasbench import load_nasbench',
        f"bench = load_nasbench('{bench_path}')",
        "entry = bench.query('ga=...;gb=...;st=...;h0=...;h1=...;hm=...')  # or its key",
        "snip = bench.values('proxies.snip')          # key -> score",
        f"early = bench.values('mIoU@{first}')              # val mIoU after {first} "
        'iterations',
        "bench.to_csv('seg101-bench.csv')             # one row per architecture",
        '```',
        '',
        '## Building the benchmark',
        '',
        '```shell',
        f'python tools/analysis_tools/build_nasbench.py {meta.get("search_config")} '
        '[--num 100]',
        '```',
        '',
        'The build is a random search run by the search loop (ledger, launcher, resume): after '
        'every round of trainings `NASBenchExportHook` scores the new architectures\' proxies '
        'and rewrites the file. Run the same command again after a kill. On a machine without '
        'the work dir, the build replays the random search and takes the entries the file '
        'holds as trained, so only the missing ones are trained; retraining any entry needs '
        'only its genotype, the recipe and the recorded seed.',
        '',
    ]
    return lines


def early_lines(res: dict, figs: dict, md_dir) -> list:
    lines = []
    lines += [
        '## Early against final',
        '',
        '| val mIoU at | against | n | Spearman rho [95 % CI] | Kendall tau |',
        '|---|---|---|---|---|',
    ]
    for r in res['early_vs_final']:
        lines.append(f'| iteration {r["iter"]} ({r["fraction"]:.0%}) | {r["against"]} | '
                     f'{r["n"]} | {_fmt(r["spearman"])} {_ci(r["spearman_ci"])} | '
                     f'{_fmt(r["kendall"])} |')
    return lines + ['', f'![early against final]({_rel(figs["early"], md_dir)})', '']


def render(bench: NASBench, res: dict, figs: dict, md_dir, bench_path, results_json) -> str:
    val = np.array(list(bench.values('mIoU').values()))
    target = next(
        (k for e in bench for k in e['val'] if k.startswith('IoU.') and k != 'IoU.background'),
        'IoU.road')
    road = np.array(list(bench.values(target).values()) or [np.nan])
    lines = [
        '# The proxy study on SEG101-Bench',
        '',
        '<!-- Generated by tools/analysis_tools/nasbench_study.py from the benchmark file; '
        'edit the generator, not this page. -->',
        '',
        'SEG101-Bench is a table of SEG101 architectures sampled uniformly from the space and '
        'trained on real aerial tiles, each with a learning curve, its test metrics, its size '
        'and every zero-cost proxy of the package. This page measures what the paper\'s '
        'Table 2 measures (the rank correlation of proxies with trained mIoU) on it, and what '
        'a reviewer asks next: do the proxies beat parameter count and FLOPs, can short '
        'training rank architectures, how well does the NPENAS predictor rank them, and what '
        'each buys in a search.',
        '',
        f'Regenerate it with `python tools/analysis_tools/nasbench_study.py {bench_path}`.',
        '',
        '## Summary',
        '',
        f'- **{len(bench)} trained architectures** ({len(bench.failed)} failed trainings), '
        f'val mIoU {_fmt(val.min())} to {_fmt(val.max())} % (median {_fmt(np.median(val))}), '
        f'{target[4:]} IoU {_fmt(np.nanmin(road))} to {_fmt(np.nanmax(road))} %.',
    ]
    lines += summary_lines(bench, res)
    lines += protocol_lines(bench, res, bench_path)
    lines += reproducibility_lines(res.get('reproducibility'), bench_path)
    lines += targets_lines(res)
    lines += [
        '## Correlation with val mIoU',
        '',
        'Signed Spearman rho and Kendall tau with percentile-bootstrap 95 % intervals (1000 '
        'resamples of architectures), and the precision at the top 10 % (the fraction of the '
        'top-k by score that are in the top-k by val mIoU). Ensembles are fixed before looking '
        'at the data: the mean rank of every proxy, of the paper\'s six (each oriented by the '
        'sign convention), and AZ-NAS\'s log-rank aggregate of its three components with '
        'FLOPs.',
        '',
        correlation_markdown(res["correlations"]),
        '',
        f'![proxies against val mIoU]({_rel(figs["scatter"], md_dir)})',
        '',
        '### Against test mIoU',
        '',
        correlation_markdown(res['correlations_test']),
        '',
    ]
    lines += size_baseline_lines(res)
    lines += early_lines(res, figs, md_dir)
    lines += predictor_lines(res, figs, md_dir)
    lines += simulation_lines(res, figs, md_dir)
    lines += [
        f'All numbers of this page: `{_rel(results_json, md_dir)}`.',
        '',
    ]
    return '\n'.join(lines)
