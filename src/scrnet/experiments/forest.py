"""A forest plot of a ``scrnet compare`` result: one panel per metric, one row per group, the difference against
the baseline with its 95% interval, coloured by verdict, the seeds in the row's label.

Drawn with matplotlib's object API on an Agg canvas: no pyplot, no backend switch, nothing process-wide changes.
Labels are drawn as plain text (no maths parsing), whatever characters a group's label holds.
"""

from pathlib import Path

from .compare import METRICS, CompareError, fmt_value

COLOURS = {"better": "#1a9850", "worse": "#d73027", "equivalent": "#762a83", "no worse": "#4575b4",
           "inconclusive": "#7f7f7f", "exploratory": "#c7c7c7"}


def row_label(c: dict) -> str:
    seeds = ",".join(fmt_value(s) for s in c["group_seeds"])
    if c["pairing"] == "unpaired":
        seeds += " vs " + ",".join(fmt_value(s) for s in c["baseline_seeds"]) + ", unpaired"
    return f"{c['group']}\nseeds {seeds}"


def forest_plot(result: dict, path: str | Path) -> Path:
    """Write the forest plot of ``result`` (``compare()``'s) to ``path`` (PNG, or any format matplotlib writes)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise ImportError("the forest plot needs matplotlib: pip install 'scrnet[report]'") from None
    against_baseline = [c for c in result["comparisons"] if c["baseline"] == result["baseline"]]
    metrics = [m for m in METRICS if any(c["metric"] == m for c in against_baseline)]
    groups = list(dict.fromkeys(c["group"] for c in against_baseline))
    if not metrics or not groups:
        raise CompareError("nothing to plot: the result has no comparison (one group only?)")
    height = 1.2 + 0.55 * len(groups)
    fig = Figure(figsize=(4.2 * len(metrics) + 3.2, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        rows = {c["group"]: c for c in against_baseline if c["metric"] == metric}
        for y, group in enumerate(groups):
            c = rows.get(group)
            if c is None:
                continue
            colour = COLOURS.get(c["verdict"], COLOURS["inconclusive"])
            ax.errorbar(100 * c["diff"], y, xerr=[[100 * (c["diff"] - c["low"])], [100 * (c["high"] - c["diff"])]],
                        fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        if result.get("margin") is not None:  # in points
            for edge in (-result["margin"], result["margin"]):
                ax.axvline(edge, color=COLOURS["equivalent"], linewidth=0.8, linestyle="--")
        ax.set_xlabel(f"Δ {METRICS[metric]} (points) vs baseline")
        ax.set_title(METRICS[metric], parse_math=False)
        ax.grid(axis="x", alpha=0.3)
    first = axes[0]
    labels = [row_label(next(c for c in against_baseline if c["group"] == g)) for g in groups]
    first.set_yticks(range(len(groups)))
    first.set_yticklabels(labels, fontsize=8)
    for text in first.get_yticklabels():
        text.set_parse_math(False)
    first.set_ylim(len(groups) - 0.5, -0.5)
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=word) for word, colour in COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    title = fig.suptitle(f"baseline: {result['baseline']}  (95% intervals, unadjusted; colour: the Holm-corrected "
                         f"verdict)", fontsize=9)
    title.set_parse_math(False)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
