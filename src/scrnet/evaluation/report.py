"""``scrnet eval ... --report report.html``: one self-contained HTML page (images inline as PNG data, no network,
opens from disk) that shows what the numbers mean.

Sections (each a ``<section id=...>``): ``header`` (what was scored, with which protocol, scrnet version, date),
``per-class`` (IoU, Boundary IoU and F@3px per class, as a table and as bar charts), ``confusion`` (the
row-normalised confusion matrix as a heat map), ``distance`` (mIoU against distance from ground-truth boundaries),
``worst`` (the k images with the lowest per-image mIoU: image | ground truth | prediction | error map) and, for models
with SRM offsets, ``offsets`` (mean offset length and share of pixels moved more than 0.5 px per SRM stage, and the
finest offset field of one image). Plots need matplotlib (the ``report`` extra).
"""

import base64
import datetime
import html
import io
from pathlib import Path

import cv2
import numpy as np
import torch

from .._version import __version__
from ..config import normalization
from ..data.source import IGNORE, palette_table
from ..drawing import flow_to_color
from ..models.srm import MODES_WITHOUT_OFFSETS
from .inference import infer_as_configured
from .run import EvalRun, renamed_note

SECTIONS = ("header", "per-class", "confusion", "distance", "worst", "offsets")


def _png(array_or_figure) -> str:
    """A ``data:`` URI of a PNG from an RGB uint8 array or a matplotlib figure."""
    buffer = io.BytesIO()
    if isinstance(array_or_figure, np.ndarray):
        from PIL import Image

        Image.fromarray(array_or_figure).save(buffer, format="PNG")
    else:
        array_or_figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _img(uri: str, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{size}>'


def _figure(figsize):
    """A matplotlib figure on its own Agg canvas: no pyplot, no backend switch, nothing process-wide changes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _plain_ticks(labels) -> None:
    """Tick labels are data (class names from a data set or a checkpoint): drawn as text, never as maths."""
    for text in labels:
        text.set_parse_math(False)


def _figures(summary: dict, confusion: np.ndarray, class_names: list[str]):
    k = len(class_names)
    figures = {}
    fig, ax = _figure((max(6, 0.45 * k), 3.2))
    x = np.arange(k)
    series = [("IoU", [summary["iou"][c] for c in class_names])]
    if "boundary_iou" in summary:
        series.append(("Boundary IoU", [summary["boundary_iou"]["per_class"][c] for c in class_names]))
        first = next(iter(summary["boundary_f"]))
        series.append((f"F@{first}px", [summary["boundary_f"][first]["per_class"][c] for c in class_names]))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        ax.bar(x + i * width, [100 * (v or 0) for v in values], width, label=label)
    ax.set_xticks(x + 0.4 - width / 2, class_names, rotation=60, ha="right", fontsize=8)
    _plain_ticks(ax.get_xticklabels())
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    figures["per-class"] = _png(fig)

    rows = confusion.sum(1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=np.float64), where=rows > 0)
    fig, ax = _figure((max(5, 0.4 * k), max(4.5, 0.4 * k)))
    image = ax.imshow(normalised, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), class_names, fontsize=7)
    _plain_ticks(ax.get_xticklabels() + ax.get_yticklabels())
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the ground-truth row")
    figures["confusion"] = _png(fig)

    if "distance_bands" in summary:
        bands = summary["distance_bands"]
        labels = [(f"{b['from']:g}+" if b["to"] is None else f"{b['from']:g}-{b['to']:g}") for b in bands]
        fig, ax = _figure((5, 3))
        ax.plot(labels, [100 * b["miou"] if b["miou"] is not None else np.nan for b in bands], marker="o")
        ax.set_xlabel("distance from a ground-truth boundary (px)")
        ax.set_ylabel("mIoU (%)")
        ax.grid(alpha=0.3)
        figures["distance"] = _png(fig)
    return figures


@torch.no_grad()
def _predict(run: EvalRun, index: int):
    """Image (RGB), ground truth, prediction (train ids) and the finest SRM offsets of dataset item ``index``."""
    cfg, model = run.config, run.loaded.model
    item = run.dataset[index]
    image = normalization(cfg)(item["image"][None].to(run.device))  # as scored (eval overrides included)
    target = item["mask"]
    e = cfg.eval
    scores = infer_as_configured(model, image, tuple(target.shape), e, len(run.loaded.class_names))
    pred = scores.argmax(1)[0].cpu().numpy().astype(np.uint8)
    rgb = item["image"].permute(1, 2, 0).numpy()
    offsets = None
    if cfg.model.srm.mode not in MODES_WITHOUT_OFFSETS:
        offsets = [o.float().cpu() if o is not None else None for o in model(image, return_offsets=True).offsets]
    return rgb, target.numpy(), pred, offsets


def _resize_nearest(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if array.shape[:2] == shape:
        return array
    return cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


STYLE = ("body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;"
         "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
         "section{margin-bottom:36px}img{max-width:100%;image-rendering:pixelated}"
         "#header td{text-align:left}.strip{display:flex;gap:4px}.strip img{width:24%;min-width:0}")


def write_report(run: EvalRun, summary: dict, path: str | Path, source: str, worst: int = 4) -> Path:
    """Write the report of an evaluation made with ``keep_per_image=True`` (see the module docstring)."""
    path = Path(path)
    names = run.result.class_names  # the data set's: what the summary is keyed by (see EvalRun.renamed_classes)
    figures = _figures(summary, run.result.confusion.matrix.cpu().numpy(), names)
    scored = [(c.miou(), index) for c, index in zip(run.result.per_image, run.indices)]
    scored = sorted((s, i) for s, i in scored if s == s)[:worst]  # NaN (no class in the image) left out
    worst_html, offsets_html = _worst_images(run, scored)
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             f"<title>scrnet eval: {html.escape(source)}</title><style>{STYLE}</style></head><body>",
             _header(run, summary, source), _per_class(summary, names, figures),
             '<section id="confusion"><h2>Confusion matrix (rows: ground truth, normalised)</h2>'
             f"{_img(figures['confusion'], 'confusion matrix')}</section>",
             _distance(summary, figures), worst_html, offsets_html, "</body></html>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(p for p in parts if p))
    return path


def _protocol(cfg) -> str:
    protocol = f"{cfg.eval.mode}" + (f", windows {cfg.eval.crop_size} every {cfg.eval.stride}"
                                     if cfg.eval.mode == "slide" else "")
    protocol += f", multi-scale {cfg.eval.scales} + flip" if cfg.eval.tta else ", single scale"
    protocol += f", resize {cfg.data.eval.scale}" if cfg.data.eval.scale else ", images at their own size"
    return protocol


def _header(run: EvalRun, summary: dict, source: str) -> str:
    cfg = run.config
    rows = [("model", source), ("architecture", f"{cfg.model.name} ({cfg.model.backbone}, SRM {cfg.model.srm.mode}, "
                                                  f"context {cfg.model.context.type})"),
            ("data set", f"{cfg.data.type} at {cfg.data.root}"), ("split", run.split),
            ("images", str(summary["num_images"])), ("protocol", _protocol(cfg)),
            ("mIoU", f"{_pct(summary['miou'])} %"), ("pixel accuracy", f"{_pct(summary['aacc'])} %")]
    if "boundary_iou" in summary:
        rows.append(("Boundary IoU", f"{_pct(summary['boundary_iou']['mean'])} % (dilation ratio "
                                     f"{summary['boundary_iou']['dilation_ratio']})"))
        rows += [(f"boundary F@{t}px", f"{_pct(v['mean'])} %") for t, v in summary["boundary_f"].items()]
    note = renamed_note(summary)
    if note:
        rows.append(("class names", note.removeprefix("note: ")))
    rows += [("scrnet", __version__), ("date", datetime.datetime.now().isoformat(timespec="seconds"))]
    return ('<section id="header"><h1>scrnet evaluation report</h1><table>'
            + "".join(f"<tr><th>{html.escape(k)}</th><td class='{html.escape(k.replace(' ', '-'))}'>"
                      f"{html.escape(v)}</td></tr>" for k, v in rows) + "</table></section>")


def _per_class(summary: dict, names: list[str], figures: dict) -> str:
    head = "<tr><th>class</th><th>IoU %</th>"
    published = "boundary_iou" in summary
    first = next(iter(summary["boundary_f"])) if published else None
    if published:
        head += f"<th>Boundary IoU %</th><th>F@{first}px %</th>"
    rows = []
    for name in names:
        cells = f"<td>{html.escape(name)}</td><td>{_pct(summary['iou'][name])}</td>"
        if published:
            cells += (f"<td>{_pct(summary['boundary_iou']['per_class'][name])}</td>"
                      f"<td>{_pct(summary['boundary_f'][first]['per_class'][name])}</td>")
        rows.append(f"<tr>{cells}</tr>")
    return (f'<section id="per-class"><h2>Per class</h2><table>{head}</tr>' + "\n".join(rows)
            + f"</table><p>{_img(figures['per-class'], 'per-class bar chart')}</p></section>")


def _distance(summary: dict, figures: dict) -> str:
    parts = ['<section id="distance"><h2>mIoU against distance from boundaries</h2>']
    if "distance" in figures:
        parts.append(_img(figures["distance"], "mIoU by distance band") + "<table><tr><th>band (px)</th>"
                     "<th>mIoU %</th></tr>")
        for b in summary["distance_bands"]:
            label = (f"{b['from']:g}+" if b["to"] is None else f"{b['from']:g}-{b['to']:g}")
            parts.append(f"<tr><td>{label}</td><td>{_pct(b['miou'])}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>eval.boundary.enabled=false: no distance bands were computed.</p>")
    return "\n".join(parts) + "\n</section>"


def _worst_images(run: EvalRun, scored: list[tuple[float, int]]) -> tuple[str, str]:
    """The worst images' strips, and the SRM offsets section over them ("" for a network without offsets)."""
    palette = palette_table(run.loaded.palette)
    parts = [f'<section id="worst"><h2>The {len(scored)} worst images</h2>'
             "<p>image | ground truth | prediction | error map (red: wrong, black: ignored)</p>"]
    offset_stats, offset_picture = None, None
    for miou, index in scored:
        rgb, target, pred, offsets = _predict(run, index)
        shape = target.shape
        rgb = _resize_nearest(rgb, shape)
        gt = palette[np.where(target == IGNORE, 0, target)] * (target != IGNORE)[..., None]
        error = np.zeros((*shape, 3), np.uint8)
        error[(pred != target) & (target != IGNORE)] = (230, 30, 30)
        error[(pred == target)] = (235, 235, 235)
        name = Path(run.dataset.source.pairs[index][0]).name
        parts.append(f"<h3>{html.escape(name)}: mIoU {100 * miou:.2f} %</h3><div class='strip'>"
                     + "".join(_img(_png(np.ascontiguousarray(a)), f"{name} {what}") for a, what in
                               ((rgb, "image"), (gt, "ground truth"), (palette[pred], "prediction"),
                                (error, "error map"))) + "</div>")
        if offsets is not None:
            stats = [None if o is None else (float(o.norm(dim=1).mean()), float((o.norm(dim=1) > 0.5).float().mean()))
                     for o in offsets]
            offset_stats = stats if offset_stats is None else [
                None if a is None else tuple(x + y for x, y in zip(a, b)) for a, b in zip(offset_stats, stats)]
            if offset_picture is None and offsets[-1] is not None:
                offset_picture = flow_to_color(offsets[-1][0].numpy())
    parts.append("</section>")
    if offset_stats is None:
        return "\n".join(parts), ""
    n = len(scored)
    rows = []
    for i, stat in enumerate(offset_stats):
        cells = ("<td>n/a</td><td>n/a</td>" if stat is None else
                 f"<td>{stat[0] / n:.3f}</td><td>{100 * stat[1] / n:.1f} %</td>")
        rows.append(f"<tr><td>stride {32 // 2 ** (i + 1)}</td>{cells}</tr>")
    offsets_html = ('<section id="offsets"><h2>SRM offsets</h2><table><tr><th>SRM step (coarse to fine)</th>'
                    "<th>mean length (px of its map)</th><th>share moved &gt; 0.5 px</th></tr>\n" + "\n".join(rows)
                    + "\n</table><p>Over the images above. The finest step's field (hue: direction, brightness: "
                    f"length):</p>{_img(_png(offset_picture), 'SRM offset field', 480)}</section>")
    return "\n".join(parts), offsets_html
