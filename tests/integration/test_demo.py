"""`scrnet demo --quick` end to end, as `make demo` runs it at full size."""

import json

from cli_helpers import run_like_subprocess


def test_demo_quick(tmp_path):
    result = run_like_subprocess("demo", "--quick", "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "SCRNet (SRM + CRM)" in out and "FPN baseline (bilinear+PPM)" in out and "image-only 95% interval" in out
    # scored at the final iteration (best.pth was picked on the same images), and no verdict from one run each
    assert "scoring scrnet at iteration 12 (its final checkpoint)" in out and "iteration 12:" in out
    assert "no verdict: one training run per model" in out
    assert not any(word in out for word in ("better beyond", "within evaluation noise", "worse beyond"))
    assert "scrnet predict" in out and "scrnet train configs/cityscapes/scrnet_r18.yaml" in out
    for name in ("scrnet_effl0_synthetic.pth", "metrics.json", "srm_offsets.png", "training_curve.png"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "predictions").glob("*.png"))) == 4
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for model in ("scrnet", "fpn"):
        assert {"miou", "mbiou", "iou", "biou", "num_images"} <= set(metrics[model])
    assert metrics["scored_iteration"] == 12
    # the printed comparison is the one in metrics.json
    for key, label in (("miou", "mIoU"), ("mbiou", "BIoU*")):
        low, high = (100 * v for v in metrics["difference_image_only_95ci"][key])
        diff = 100 * (metrics["scrnet"][key] - metrics["fpn"][key])
        assert -100 <= low <= diff <= high <= 100
        assert f"{label} difference {diff:+.2f} points, image-only 95% interval [{low:+.2f}, {high:+.2f}]" in out
    check = run_like_subprocess("eval", tmp_path / "scrnet_effl0_synthetic.pth", "--data.root", tmp_path / "data")
    assert check.returncode == 0 and f"{100 * metrics['scrnet']['miou']:.2f}" in check.stdout
    # a second demo into the same folder replaces what the first wrote, and nothing else
    (tmp_path / "notes.md").write_text("mine")
    (tmp_path / "runs" / "scrnet" / "my_plot.png").write_bytes(b"mine too")
    again = run_like_subprocess("demo", "--quick", "--out", tmp_path)  # in this process: as the console script
    assert again.returncode == 2 and "runs/scrnet exists and was not written by scrnet" in again.stderr
    assert (tmp_path / "runs" / "scrnet" / "my_plot.png").read_bytes() == b"mine too"
    assert (tmp_path / "metrics.json").read_text() == json.dumps(metrics, indent=2) + "\n"
    (tmp_path / "runs" / "scrnet" / "my_plot.png").unlink()
    again = run_like_subprocess("demo", "--quick", "--out", tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "notes.md").read_text() == "mine"


def test_image_only_interval_of_identical_results_is_zero_and_of_a_shift_excludes_zero():
    import numpy as np
    import torch

    from scrnet.evaluation.boundary import BIoUStar
    from scrnet.evaluation.evaluate import EvalResult, ImageCounts
    from scrnet.evaluation.metrics import ConfusionMatrix
    from scrnet.experiments.demo import image_only_interval

    def result(correct: float) -> EvalResult:
        per_image = []
        for i in range(20):
            cm = torch.tensor([[100, 0], [0, 100]]) if i < correct * 20 else torch.tensor([[50, 50], [50, 50]])
            tp, gt, pred = cm.diagonal().numpy(), cm.sum(1).numpy(), cm.sum(0).numpy()
            per_image.append(ImageCounts(tp, gt, pred, np.array([10, 10]), np.array([20, 20])))
        return EvalResult(ConfusionMatrix(2), BIoUStar(2), 20, ["a", "b"], per_image=per_image)

    same = image_only_interval(result(0.5), result(0.5))
    assert same["miou"] == [0.0, 0.0] and same["mbiou"] == [0.0, 0.0]
    better = image_only_interval(result(0.9), result(0.3))
    assert 0 < better["miou"][0] <= better["miou"][1]
