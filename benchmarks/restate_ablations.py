"""The committed ablation verdicts restated under their families: for each compare output in docs/ablations/, every
comparison's t p-value (from its committed difference, standard error and degrees of freedom), Holm's adjustment over
the file's family (its groups x metrics, as ``scrnet compare`` now corrects a call without a plan) and the verdict
that survives (5 seeds, 95%). The committed intervals were made with the image bootstrap of their time, not the
jackknife; their p-values are restated as they stand, not recomputed from the runs (whose files are not committed).

    python benchmarks/restate_ablations.py
"""

import json
import math
from pathlib import Path

from scrnet.experiments.intervals import holm, t_p_two_sided

ROOT = Path(__file__).resolve().parents[1] / "docs" / "ablations"
NAMES = {"miou": "mIoU", "mbiou": "BIoU*", "boundary_iou": "Boundary IoU"}


def restate(path: Path) -> list[list[str]]:
    result = json.loads(path.read_text())
    comparisons = result["comparisons"]
    p = [t_p_two_sided(c["diff"] / c["se"], math.inf if c["df"] is None else c["df"]) if c["se"] > 0 else 1.0
         for c in comparisons]
    adjusted = holm(p)
    rows = []
    for c, raw, adj in zip(comparisons, p, adjusted):
        decided = c["seeds"] >= 5 and adj < 0.05
        word = ("better" if c["diff"] > 0 else "worse") if decided else "inconclusive"
        rows.append([path.stem, f"{c['group']} vs {c['baseline']}", NAMES[c["metric"]],
                     f"{100 * c['diff']:+.2f} [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]", f"{raw:.3f}",
                     f"{adj:.3f} ({len(comparisons)})", c["verdict"], word])
    return rows


def main() -> None:
    head = ["study", "comparison", "metric", "Δ [95% CI] as committed", "p", "p Holm (family)", "verdict then",
            "verdict under Holm"]
    rows = [r for path in sorted(ROOT.glob("*.json")) for r in restate(path)]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|")
    for r in rows:
        print("| " + " | ".join(f"`{x}`" if i == 1 else x for i, x in enumerate(r)) + " |")


if __name__ == "__main__":
    main()
