"""Describe one SEG101 network: parameters, FLOPs, its structure, and a diagram of the genotype.

The network is given either as a genotype text or as an mmseg config whose model has a
``SEG101EnhanceNeck`` and a ``SEG101FusionHead``::

    G='ga=conv3x3,conv3x3,dil3_conv3x3,avgpool_0.25;gb=se,se,self_attention,avgpool_0.25;st=conv3x3,dil5_conv3x3,avgpool_0.75,conv3x3;h0=01+02+13/01+12;h1=02+03+23/01+02;hm=concat_head'  # noqa: E501
    python tools/analysis_tools/seg101_info.py "$G" --png seg101.png --json seg101.json
    python tools/analysis_tools/seg101_info.py configs/seg101/<config>.py --shape 512 512

It prints the parameter count (total and per part), the FLOPs of one forward pass of a
``1 x 3 x H x W`` image counted by ``mmengine.analysis.get_model_complexity_info`` (mmengine
counts one multiply-add as one FLOP; mmseg 1.2.2's ``get_flops.py`` does not run with mmengine
0.10.7), and a readable description of the network of docs/method.md sections 1 and 3: per stage
the four group ops, the enhancement SE and the stage op; for each head its fusion tree with channel
counts; the head merge. ``--png`` draws the architecture in the manner of the paper's Fig. 1
(backbone stages, group ops, enhancement SE, stage ops, the two heads' fusion nodes with their
edges, the head merge).
"""
import argparse
import json
import os
import os.path as osp
import sys
import textwrap

import seg101_mm  # noqa: F401  (registers modules and applies compat fixes; must come first)

# isort: split
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from seg101_mm.models import build_seg101
from seg101_mm.space import Genotype
from seg101_mm.tools.train import replace_sync_bn

#: Fill colours of the diagram, one per operation (group ops and stage ops share them).
OP_COLORS = {
    'conv3x3': '#8dd3c7',
    'dil3_conv3x3': '#ffed6f',
    'dil5_conv3x3': '#bebada',
    'avgpool_0.25': '#fb8072',
    'avgpool_0.75': '#80b1d3',
    'self_attention': '#fdb462',
    'se': '#b3de69',
}
#: Short names used inside the small boxes of the diagram.
OP_SHORT = {
    'conv3x3': 'conv3x3',
    'dil3_conv3x3': 'dil3',
    'dil5_conv3x3': 'dil5',
    'avgpool_0.25': 'pool .25',
    'avgpool_0.75': 'pool .75',
    'self_attention': 'attn',
    'se': 'SE',
}
HEAD_COLORS = ('#1f77b4', '#d62728')
HEAD_MERGE_COLOR = '#bc80bd'
ENHANCE_SE_COLOR = '#fccde5'
MERGE_COLOR = '#e0e0e0'
BACKBONE_COLOR = '#c7c7c7'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Params, FLOPs, description and diagram of a SEG101 network')
    parser.add_argument(
        'target',
        help='a genotype text (ga=...;gb=...;st=...;h0=...;h1=...;hm=...) or an '
        'mmseg config file (.py) of a SEG101 model')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[512, 512],
        help='input image size H [W] for the FLOP count (default: 512 512)')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=2,
        help='output classes when the target is a genotype (default: 2)')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP count')
    parser.add_argument('--png', help='draw the architecture diagram into this PNG file')
    parser.add_argument('--json', help='write the summary (params, FLOPs, structure) as JSON')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config (config target only), xxx=yyy format')
    args = parser.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = [args.shape[0]] * 2
    if len(args.shape) != 2 or min(args.shape) < 32:
        parser.error(f'--shape takes H [W], each at least 32 (the backbone downsamples 32x), '
                     f'got {args.shape}')
    return args


def is_config_path(target):
    return target.endswith('.py') or osp.isfile(target)


def build_from_config(path, cfg_options=None):
    """Build the model of an mmseg config; return ``(model, genotype)``.

    SyncBN becomes BN (the model only runs forward on the CPU here).
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = replace_sync_bn(cfg.model)
    texts = {part: model_cfg.get(part, {}).get('genotype') for part in ('neck', 'decode_head')}
    if texts['neck'] is None or texts['decode_head'] is None:
        raise ValueError(
            f'{path}: model.neck and model.decode_head must both take a SEG101 genotype, '
            f'got neck genotype {texts["neck"]!r} and decode_head genotype '
            f'{texts["decode_head"]!r}')
    neck_g, head_g = (Genotype.parse(t) for t in (texts['neck'], texts['decode_head']))
    if neck_g != head_g:
        raise ValueError(f'{path}: neck and decode_head describe different genotypes: '
                         f'neck {neck_g} vs decode_head {head_g}')
    model = MODELS.build(model_cfg)
    return model, neck_g


def count_params(module):
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def stage_sizes(model, shape):
    """Spatial size of each backbone stage for a ``1 x 3 x H x W`` input."""
    feats = model.extract_feat(torch.zeros(1, 3, *shape))
    return [tuple(f.shape[-2:]) for f in feats]


def summarize(model, genotype, shape):
    """Structure and parameter counts of a built SEG101 EncoderDecoder, as plain data.

    Channel counts are read from the built modules (docs/method.md section 3: a layer-1/2 merge of
    C1 and C2 channels gives floor(C1/2) + floor(C2/2), the layer-3 merge C1 + C2).
    """
    neck, head = model.neck, model.decode_head
    sizes = stage_sizes(model, shape)
    stages = []
    for s, stage in enumerate(neck.stages):
        channels = neck.in_channels[s]
        stages.append(
            dict(
                name=f'S{s + 1}',
                channels=channels,
                size=list(sizes[s]),
                stride=shape[0] // sizes[s][0],
                group_ops=list(genotype.group_ops(s)),
                group_channels=stage.group_channels,
                se_hidden=stage.enhance.fc1.out_features,
                stage_op=genotype.stage_ops[s],
                params=count_params(stage)))
    heads = []
    for h, (tree, hg) in enumerate(zip(head.trees, genotype.heads)):
        l1 = [
            dict(
                node=f'L1.{i}',
                inputs=[f'F{a + 1}', f'F{b + 1}'],
                pair=[a, b],
                in_channels=list(m.in_channels),
                out_channels=m.out_channels) for i, (m, (a, b)) in enumerate(zip(tree.l1, hg.l1))
        ]
        l2 = [
            dict(
                node=f'L2.{j}',
                inputs=[f'L1.{p}', f'L1.{q}'],
                pair=[p, q],
                in_channels=list(m.in_channels),
                out_channels=m.out_channels) for j, (m, (p, q)) in enumerate(zip(tree.l2, hg.l2))
        ]
        l3 = dict(
            node='L3',
            inputs=['L2.0', 'L2.1'],
            in_channels=list(tree.l3.in_channels),
            out_channels=tree.l3.out_channels)
        heads.append(
            dict(
                head=h,
                genotype=str(hg),
                l1=l1,
                l2=l2,
                l3=l3,
                stages_used=[f'S{s + 1}' for s in hg.stages_used()],
                params=count_params(tree)))
    merged_in = sum(t.out_channels for t in head.trees)
    return dict(
        genotype=str(genotype),
        key=genotype.key,
        input_shape=list(shape),
        params=dict(
            total=count_params(model),
            backbone=count_params(model.backbone),
            neck=count_params(neck),
            decode_head=count_params(head)),
        stages=stages,
        stages_unused=[f'S{s + 1}' for s in range(len(stages)) if s not in genotype.stages_used()],
        heads=heads,
        head_merge=dict(
            type=genotype.head_merge,
            in_channels=merged_in,
            classifier_channels=head.channels,
            num_classes=head.num_classes,
            params=count_params(head.head_merge) + count_params(head.conv_seg)))


def count_flops(model, shape, activations=True):
    """FLOPs (and activations) of one forward of a ``1 x 3 x H x W`` image, mmengine's counter.

    ``mmengine.analysis.get_model_complexity_info`` counts one multiply-add as one FLOP and
    skips normalisation, pooling, resizing and softmax (it logs each skipped operator as a
    warning; those warnings are silenced here). It traces the model twice, once for FLOPs and
    once for activations; with ``activations=False`` only its FLOP counter
    (``mmengine.analysis.FlopAnalyzer``, same numbers) runs, in half the time.

    Returns:
        tuple[int, int | None]: FLOPs and activations (None when not counted).
    """
    import logging

    from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    inputs = (torch.zeros(1, 3, *shape), )
    try:
        with torch.no_grad():
            if not activations:
                return int(FlopAnalyzer(model, inputs).total()), None
            info = get_model_complexity_info(
                model, inputs=inputs, show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return int(info['flops']), int(info['activations'])


def human(n, unit=''):
    for scale, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= scale:
            return f'{n / scale:.3f} {suffix}{unit}'
    return f'{n} {unit}'.strip()


def describe(summary):
    """The summary as readable text lines."""
    p = summary['params']
    lines = [f'SEG101 genotype: {summary["genotype"]}', f'canonical key:   {summary["key"]}', '']
    lines.append(f'Params: {p["total"]:,} ({human(p["total"])}) = backbone {p["backbone"]:,} '
                 f'+ neck {p["neck"]:,} + decode head {p["decode_head"]:,}')
    if summary.get('flops') is not None:
        h, w = summary['input_shape']
        lines.append(f'FLOPs: {summary["flops"]:,} ({human(summary["flops"])}) for a 1x3x{h}x{w} '
                     f'input (mmengine counter: one multiply-add = one FLOP; normalisation, '
                     f'pooling, resizing, softmax not counted); activations '
                     f'{summary["activations"]:,}')
    lines += [
        '', 'Backbone RegNetX-400MF -> enhancement neck (per stage: 4 group ops on channel '
        'groups, enhancement SE fed by the stage map, stage op):'
    ]
    for st in summary['stages']:
        groups = ' | '.join(st['group_ops'])
        lines.append(f'  {st["name"]} (stride {st["stride"]}, {st["channels"]} ch, '
                     f'{st["size"][0]}x{st["size"][1]}): group ops [{groups}] on 4 x '
                     f'{st["group_channels"]} ch -> enhancement SE (hidden {st["se_hidden"]}) -> '
                     f'{st["stage_op"]} -> F{st["name"][1:]} ({st["channels"]} ch)  '
                     f'[{st["params"]:,} params]')
    if summary['stages_unused']:
        unused = ', '.join(summary['stages_unused'])
        lines.append(f'  (built and run, but read by no head: {unused})')
    lines += ['', 'Fusion heads (Merge = resize to the larger map, concat, 1x1 conv-BN-ReLU):']
    for hd in summary['heads']:
        lines.append(f'  head {hd["head"]} ({hd["genotype"]}, reads '
                     f'{", ".join(hd["stages_used"])}) [{hd["params"]:,} params]:')
        for node in hd['l1'] + hd['l2'] + [hd['l3']]:
            a, b = node['inputs']
            ca, cb = node['in_channels']
            lines.append(f'    {node["node"]:<4} = Merge({a}, {b}): {ca} + {cb} -> '
                         f'{node["out_channels"]} ch')
    hm = summary['head_merge']
    lines += [
        '', f'Head merge: {hm["type"]} of head 0 and head 1 ({hm["in_channels"]} ch) -> '
        f'{hm["classifier_channels"]} ch -> 1x1 conv to {hm["num_classes"]} classes, '
        f'bilinear resize to the image  [{hm["params"]:,} params]'
    ]
    return lines


# ---------------------------------------------------------------------------- diagram
def _box(ax, x, y, w, h, text, color, fontsize=7, weight='normal'):
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(
        FancyBboxPatch((x - w / 2, y - h / 2),
                       w,
                       h,
                       boxstyle='round,pad=0.02',
                       facecolor=color,
                       edgecolor='#333333',
                       linewidth=0.8))
    ax.text(x, y, text, ha='center', va='center', fontsize=fontsize, weight=weight)


def _arrow(ax, start, end, color='#555555', lw=0.9, alpha=1.0, rad=0.0):
    from matplotlib.patches import FancyArrowPatch
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle='-|>',
            mutation_scale=7,
            color=color,
            linewidth=lw,
            alpha=alpha,
            shrinkA=0,
            shrinkB=0,
            connectionstyle=f'arc3,rad={rad}'))


def draw_architecture(summary, path):
    """Draw the network of ``summary`` (see :func:`summarize`) into a PNG at ``path``.

    Left to right: the image, the four RegNetX-400MF stages, each stage's four group ops, its
    enhancement SE and stage op; then each head's three fusion layers (edges coloured by head),
    the head merge and the logits.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(17, 9.5))
    band = 2.5  # vertical space per stage
    stage_y = [(3 - s) * band + band / 2 for s in range(4)]
    x_img, x_bb, x_grp, x_se, x_st = 0.0, 1.7, 3.5, 5.1, 6.6
    x_l1, x_l2, x_l3, x_hm, x_out = 8.8, 10.5, 12.1, 13.9, 15.6
    bw = 1.25  # box width
    mid = 2 * band

    _box(
        ax,
        x_img,
        mid,
        1.1,
        0.9, f'image\n{summary["input_shape"][0]}x'
        f'{summary["input_shape"][1]}',
        'white',
        fontsize=8)
    stage_out = []
    unused = set(summary['stages_unused'])
    for st, y in zip(summary['stages'], stage_y):
        _box(
            ax,
            x_bb,
            y,
            bw,
            0.9,
            f'{st["name"]}\nstride {st["stride"]}\n{st["channels"]} ch',
            BACKBONE_COLOR,
            fontsize=7.5,
            weight='bold')
        _arrow(ax, (x_img + 0.55, mid), (x_bb - bw / 2, y), alpha=0.5)
        offsets = (0.78, 0.26, -0.26, -0.78)
        for op, dy in zip(st['group_ops'], offsets):
            _box(ax, x_grp, y + dy, 1.05, 0.42, OP_SHORT[op], OP_COLORS[op], fontsize=6.5)
            _arrow(ax, (x_bb + bw / 2, y), (x_grp - 0.525, y + dy), alpha=0.45, lw=0.6)
            _arrow(ax, (x_grp + 0.525, y + dy), (x_se - 0.5, y), alpha=0.45, lw=0.6)
        ax.text(
            x_grp,
            y - 1.12,
            f'4 x {st["group_channels"]} ch',
            ha='center',
            fontsize=6,
            color='#444444')
        _box(ax, x_se, y, 1.0, 0.6, f'SE\n(hid {st["se_hidden"]})', ENHANCE_SE_COLOR, fontsize=7)
        # the enhancement SE's squeeze reads the original stage map
        _arrow(
            ax, (x_bb + bw / 2, y - 0.3), (x_se - 0.5, y - 0.22),
            color='#aa3377',
            lw=0.7,
            rad=0.35)
        _box(
            ax,
            x_st,
            y,
            bw,
            0.6,
            f'F{st["name"][1:]}: {OP_SHORT[st["stage_op"]]}',
            OP_COLORS[st['stage_op']],
            fontsize=7.5,
            weight='bold')
        _arrow(ax, (x_se + 0.5, y), (x_st - bw / 2, y))
        if st['name'] in unused:
            ax.text(x_st, y - 0.5, 'read by no head', ha='center', fontsize=6, style='italic')
        stage_out.append((x_st + bw / 2, y))

    head_centres = (3 * band + 0.2, band - 0.2)
    head_out = []
    for hd, yc, color in zip(summary['heads'], head_centres, HEAD_COLORS):
        l1_y = [yc + 1.25, yc, yc - 1.25]
        l2_y = [yc + 0.62, yc - 0.62]
        for node, y in zip(hd['l1'], l1_y):
            _box(
                ax,
                x_l1,
                y,
                1.2,
                0.62, f'{node["node"].replace("L1.", "n")}: '
                f'{"+".join(node["inputs"])}\n{node["out_channels"]} ch',
                MERGE_COLOR,
                fontsize=7)
            for s in node['pair']:
                _arrow(ax, stage_out[s], (x_l1 - 0.6, y), color=color, alpha=0.7)
        for node, y in zip(hd['l2'], l2_y):
            _box(
                ax,
                x_l2,
                y,
                1.2,
                0.62, f'{"+".join(n.replace("L1.", "n") for n in node["inputs"])}\n'
                f'{node["out_channels"]} ch',
                MERGE_COLOR,
                fontsize=7)
            for p in node['pair']:
                _arrow(ax, (x_l1 + 0.6, l1_y[p]), (x_l2 - 0.6, y), color=color, alpha=0.8)
        _box(
            ax,
            x_l3,
            yc,
            1.2,
            0.62,
            f'H{hd["head"]}\n{hd["l3"]["out_channels"]} ch',
            MERGE_COLOR,
            fontsize=7.5,
            weight='bold')
        for y in l2_y:
            _arrow(ax, (x_l2 + 0.6, y), (x_l3 - 0.6, yc), color=color, alpha=0.8)
        ax.text(
            x_l2,
            yc + 1.95,
            f'head {hd["head"]}  ({hd["genotype"]})',
            ha='center',
            fontsize=8,
            color=color,
            weight='bold')
        head_out.append((x_l3 + 0.6, yc))

    hm = summary['head_merge']
    _box(
        ax,
        x_hm,
        mid,
        1.4,
        1.0, f'{hm["type"]}\n{hm["in_channels"]} -> '
        f'{hm["classifier_channels"]} ch',
        HEAD_MERGE_COLOR,
        fontsize=7.5,
        weight='bold')
    for (x, y), color in zip(head_out, HEAD_COLORS):
        _arrow(ax, (x, y), (x_hm - 0.7, mid), color=color)
    _box(ax, x_out, mid, 1.1, 0.8, f'logits\n{hm["num_classes"]} classes', 'white', fontsize=8)
    _arrow(ax, (x_hm + 0.7, mid), (x_out - 0.55, mid))

    for x, label in ((x_bb, 'RegNetX-400MF'), (x_grp, 'group ops'), (x_se, 'enhance SE'),
                     (x_st, 'stage ops'), (x_l1, 'fusion L1'), (x_l2, 'fusion L2'),
                     (x_l3, 'fusion L3'), (x_hm, 'head merge')):
        ax.text(x, 4 * band + 0.25, label, ha='center', fontsize=8.5, weight='bold')
    p = summary['params']
    title = 'SEG101  ' + '; '.join(summary['genotype'].split(';'))
    stats = f'params {human(p["total"])}'
    if summary.get('flops') is not None:
        stats += (f', FLOPs {human(summary["flops"])} at {summary["input_shape"][0]}x'
                  f'{summary["input_shape"][1]}')
    ax.set_title('\n'.join(textwrap.wrap(title, 140)) + '\n' + stats, fontsize=9)
    handles = [Patch(facecolor=c, edgecolor='#333333', label=op) for op, c in OP_COLORS.items()]
    handles += [
        Patch(facecolor=ENHANCE_SE_COLOR, edgecolor='#333333', label='enhancement SE'),
        Patch(facecolor=MERGE_COLOR, edgecolor='#333333', label='Merge (fusion node)')
    ]
    ax.legend(
        handles=handles,
        loc='lower center',
        ncol=9,
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, -0.06))
    ax.set_xlim(-0.8, 16.4)
    ax.set_ylim(-0.5, 4 * band + 0.6)
    ax.set_aspect('equal')
    ax.axis('off')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)


class TargetError(ValueError):
    """A genotype text or config that does not describe a SEG101 network."""


def main(argv=None):
    args = parse_args(argv)
    if is_config_path(args.target):
        if not osp.isfile(args.target):
            raise TargetError(f'config {args.target!r} does not exist')
        try:
            model, genotype = build_from_config(args.target, args.cfg_options)
        except ValueError as e:
            raise TargetError(str(e)) from None
    else:
        try:
            genotype = Genotype.parse(args.target)
        except ValueError as e:
            raise TargetError(f'genotype {args.target!r}: {e}') from None
        # weights do not change any count: skip the (slow) initialisation
        model = build_seg101(genotype, num_classes=args.num_classes, init_weights=False)
    model.eval()
    summary = summarize(model, genotype, tuple(args.shape))
    summary['flops'], summary['activations'] = (None, None) if args.no_flops else count_flops(
        model, tuple(args.shape))
    print('\n'.join(describe(summary)))
    if args.png:
        draw_architecture(summary, args.png)
        print(f'\ndiagram written to {args.png}')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=2)
        print(f'summary written to {args.json}')
    return summary


def cli(argv=None) -> int:
    """:func:`main` with a bad genotype or config printed as one ``error:`` line."""
    try:
        main(argv)
    except TargetError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(cli())
