"""`scrnet demo --quick` end to end, as `make demo` runs it at full size."""

import json
import subprocess
import sys


def test_demo_quick(tmp_path):
    result = subprocess.run([sys.executable, "-m", "scrnet", "demo", "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "SCRNet (SRM + CRM)" in out and "FPN baseline (bilinear+PPM)" in out and "95% bootstrap interval" in out
    assert "scrnet predict" in out and "scrnet train configs/cityscapes/scrnet_r18.yaml" in out
    for name in ("scrnet_effl0_synthetic.pth", "metrics.json", "srm_offsets.png", "training_curve.png"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "predictions").glob("*.png"))) == 4
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for model in ("scrnet", "fpn"):
        assert {"miou", "mbiou", "iou", "biou", "num_images"} <= set(metrics[model])
    # the printed comparison is the one in metrics.json, and its verdict follows from the interval
    for key, label in (("miou", "mIoU"), ("mbiou", "boundary IoU")):
        low, high = (100 * v for v in metrics["difference_95ci"][key])
        diff = 100 * (metrics["scrnet"][key] - metrics["fpn"][key])
        assert -100 <= low <= high <= 100
        verdict = ("within evaluation noise" if low <= 0 <= high else
                   "SCRNet better beyond" if low > 0 else "FPN better beyond")
        assert (f"{label} difference {diff:+.2f} points, 95% bootstrap interval over validation images "
                f"[{low:+.2f}, {high:+.2f}]: {verdict}") in out, out
    check = subprocess.run([sys.executable, "-m", "scrnet", "eval", str(tmp_path / "scrnet_effl0_synthetic.pth"),
                            "--data.root", str(tmp_path / "data")], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and f"{100 * metrics['scrnet']['miou']:.2f}" in check.stdout


def test_bootstrap_interval_of_identical_results_is_zero_and_of_a_shift_excludes_zero():
    import numpy as np
    import torch

    from scrnet.evaluation.boundary import BoundaryIoU
    from scrnet.evaluation.evaluate import EvalResult
    from scrnet.evaluation.metrics import ConfusionMatrix
    from scrnet.tools.demo import bootstrap_difference

    def result(correct: float) -> EvalResult:
        per_image = []
        for i in range(20):
            cm = torch.tensor([[100, 0], [0, 100]]) if i < correct * 20 else torch.tensor([[50, 50], [50, 50]])
            per_image.append((cm, np.array([10, 10]), np.array([20, 20])))
        return EvalResult(ConfusionMatrix(2), BoundaryIoU(2), 20, ["a", "b"], per_image=per_image)

    same = bootstrap_difference(result(0.5), result(0.5))
    assert same["miou"] == [0.0, 0.0] and same["mbiou"] == [0.0, 0.0]
    better = bootstrap_difference(result(0.9), result(0.3))
    assert 0 < better["miou"][0] <= better["miou"][1]
