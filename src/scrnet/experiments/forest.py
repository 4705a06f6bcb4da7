"""A forest plot of a ``scrnet compare`` result: one panel per metric, one row per comparison (each group against
the baseline, then any other pair a plan's family holds, such as neighbor against DySample), the difference with its
95% interval, coloured by verdict, the pair and its seeds in the row's label, and the look in the title.

Drawn with matplotlib's object API on an Agg canvas: no pyplot, no backend switch, nothing process-wide changes.
Labels are drawn as plain text (no maths parsing), whatever characters a group's label holds.
"""

from pathlib import Path

from .compare import METRICS, CompareError, fmt_value

COLOURS = {"better": "#1a9850", "worse": "#d73027", "equivalent": "#762a83", "no worse": "#4575b4",
           "inconclusive": "#7f7f7f", "exploratory": "#c7c7c7"}


def pairs(result: dict) -> dict[tuple[str, str], dict]:
    """The plot's rows, top to bottom: each ``(group, against)`` pair of the comparisons, those against the baseline
    first, in the result's order, with the pair's first comparison (its label's source)."""
    first: dict[tuple[str, str], dict] = {}
    for c in result["comparisons"]:
        first.setdefault((c["group"], c["baseline"]), c)
    order = sorted(first, key=lambda pair: pair[1] != result["baseline"])  # stable: the result's order otherwise
    return {pair: first[pair] for pair in order}


def row_label(c: dict, baseline: str) -> str:
    """A row's label: the group (with the pair's other side when it is not the baseline) and the seeds compared."""
    seeds = ",".join(fmt_value(s) for s in c["group_seeds"])
    if c["pairing"] == "unpaired":
        seeds += " vs " + ",".join(fmt_value(s) for s in c["baseline_seeds"]) + ", unpaired"
    name = c["group"] if c["baseline"] == baseline else f"{c['group']} vs {c['baseline']}"
    return f"{name}\nseeds {seeds}"


def title(result: dict) -> str:
    """The figure's title: the baseline, what the bars and colours are, and which of a plan's looks this is."""
    text = f"baseline: {result['baseline']}  (95% intervals, unadjusted; colour: the Holm-corrected verdict"
    look = (result.get("family") or {}).get("look")
    if look:
        text += (f"; look {look['index'] + 1} of {len(look['looks'])}, {look['seeds']} seeds"
                 + ("" if look["index"] + 1 == len(look["looks"]) else ": interim"))
    return text + ")"


def forest_plot(result: dict, path: str | Path) -> Path:
    """Write the forest plot of ``result`` (``compare()``'s) to ``path`` (PNG, or any format matplotlib writes)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise ImportError("the forest plot needs matplotlib: pip install 'scrnet[report]'") from None
    rows = pairs(result)
    metrics = [m for m in METRICS if any(c["metric"] == m for c in result["comparisons"])]
    if not metrics or not rows:
        raise CompareError("nothing to plot: the result has no comparison (one group only?)")
    height = 1.2 + 0.55 * len(rows)
    fig = Figure(figsize=(4.2 * len(metrics) + 3.2, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        found = {(c["group"], c["baseline"]): c for c in result["comparisons"] if c["metric"] == metric}
        for y, pair in enumerate(rows):
            c = found.get(pair)
            if c is None:
                continue
            colour = COLOURS.get(c["verdict"], COLOURS["inconclusive"])
            ax.errorbar(100 * c["diff"], y, xerr=[[100 * (c["diff"] - c["low"])], [100 * (c["high"] - c["diff"])]],
                        fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        if result.get("margin") is not None:  # in points
            for edge in (-result["margin"], result["margin"]):
                ax.axvline(edge, color=COLOURS["equivalent"], linewidth=0.8, linestyle="--")
        ax.set_xlabel(f"Δ {METRICS[metric]} (points)")
        ax.set_title(METRICS[metric], parse_math=False)
        ax.grid(axis="x", alpha=0.3)
    first = axes[0]
    labels = [row_label(c, result["baseline"]) for c in rows.values()]
    first.set_yticks(range(len(rows)))
    first.set_yticklabels(labels, fontsize=8)
    for text in first.get_yticklabels():
        text.set_parse_math(False)
    first.set_ylim(len(rows) - 0.5, -0.5)
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=word) for word, colour in COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    heading = fig.suptitle(title(result), fontsize=9)
    heading.set_parse_math(False)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
