"""ONNX export at any size for every variant, a check that catches size-baked graphs, and the benchmark's contract."""

import json

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_like_subprocess

import scrnet
from scrnet.deploy.export import check_onnx, export_onnx
from scrnet.profiling.benchmark import time_interleaved

pytest.importorskip("onnxruntime")  # the export extra
SIZES = [(64, 96), (97, 131)]


def calibrated(model):
    """BatchNorm statistics from a few random batches, as a trained model has: with the initial statistics a
    random ResNet-101's logits reach ~1e3, where float32 rounding alone exceeds the 1e-4 tolerance."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, *SIZES[0]))
    return model.eval()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "scrnet_r101" else n
                                  for n in scrnet.list_models()])  # ResNet-101: ResNet-50's blocks, twice the export
def test_every_variant_exports_and_matches_at_two_sizes(name, tmp_path):
    model = calibrated(scrnet.create_model(name, num_classes=7))
    path = export_onnx(model, tmp_path / f"{name}.onnx", size=SIZES[0])
    results = check_onnx(model, path, SIZES)
    assert all(r.ok for r in results), [r.describe() for r in results]
    assert not list(tmp_path.glob("*.data"))  # one self-contained file


@pytest.mark.parametrize("scope", ["static", "dynamic"])
def test_dysample_mode_exports_and_matches_at_two_sizes(scope, tmp_path):
    model = calibrated(scrnet.create_model("scrnet_effl0", num_classes=5, srm={"mode": "dysample",
                                                                                "dysample_scope": scope}))
    for srm in model.decoder.refine:  # offsets of a few pixels, so the check sees the sampling
        torch.nn.init.normal_(srm.dysample.offset.weight, std=0.05)
    path = export_onnx(model, tmp_path / "dysample.onnx", size=SIZES[0])
    results = check_onnx(model, path, SIZES)
    assert all(r.ok for r in results), [r.describe() for r in results]


def test_srm_sampling_the_coarse_map_exports_and_matches_at_two_sizes(tmp_path):
    model = calibrated(scrnet.create_model("scrnet_effl0", num_classes=5, srm={"mask_input": "hidden",
                                                                                "sample_from": "coarse"}))
    for srm in model.decoder.refine:  # offsets of a few pixels, so the check sees the sampling
        torch.nn.init.normal_(srm.offset.weight, std=0.05)
    path = export_onnx(model, tmp_path / "coarse.onnx", size=SIZES[0])
    results = check_onnx(model, path, SIZES)
    assert all(r.ok for r in results), [r.describe() for r in results]


@pytest.mark.parametrize("opset", [16, 18])
def test_other_opsets(opset, tmp_path):
    model = scrnet.create_model("sfnet_r18", num_classes=3, channels=32).eval()
    path = export_onnx(model, tmp_path / "m.onnx", size=(64, 64), opset=opset)
    import onnx

    assert onnx.load(str(path)).opset_import[0].version == opset
    assert all(r.ok for r in check_onnx(model, path, [(64, 64), (81, 47)]))
    with pytest.raises(ValueError, match="opset must be one of"):
        export_onnx(model, tmp_path / "x.onnx", opset=11)


class BakedGrid(torch.nn.Module):
    """The known trap: a sampling grid normalised by torch.tensor([w, h]) of Python ints is a constant in the graph."""

    def forward(self, x):
        b, _, h, w = x.shape
        ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
        grid = torch.stack([xs, ys], -1) + 0.3
        grid = 2 * (grid + 0.5) / torch.tensor([w, h], dtype=x.dtype) - 1
        return F.grid_sample(x, grid.expand(b, h, w, 2), align_corners=False, padding_mode="border")


def test_the_check_catches_a_grid_built_the_wrong_way(tmp_path):
    model = BakedGrid()
    path = export_onnx(model, tmp_path / "baked.onnx", size=SIZES[0])
    first, second = check_onnx(model, path, SIZES)
    assert first.ok and not second.ok


def test_export_cli_check_and_metadata(tmp_path):
    model = scrnet.create_model("scrnet_effl0", num_classes=3, channels=32)
    ckpt = scrnet.save_checkpoint(model, tmp_path / "m.pth", ["a", "b", "c"], [(1, 2, 3), (4, 5, 6), (7, 8, 9)])
    out = tmp_path / "m.onnx"
    result = run_like_subprocess("export", ckpt, "--onnx", out, "--size", "64", "128", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok   ") == 2 and "49x95" in result.stdout
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["scrnet.class_names"]) == ["a", "b", "c"]
    assert json.loads(meta["scrnet.normalization"])["mean"] == [0.498, 0.498, 0.498]
    bad = run_like_subprocess("export", ckpt, "--onnx", out, "--opset", "12")
    assert bad.returncode == 2 and "--opset must be one of [16, 17, 18]" in bad.stderr


def test_interleaving_runs_each_model_the_same_number_of_times():
    calls = {"a": 0, "b": 0}
    order = []

    def make(key):
        def fn():
            calls[key] += 1
            order.append(key)
        return fn

    times = time_interleaved([make("a"), make("b")], warmup=2, rounds=5, min_time_s=0.01)
    assert len(times[0]) == len(times[1]) >= 5 and calls["a"] == calls["b"]
    assert order[:6] == ["a", "b", "a", "b", "a", "b"]


def test_benchmark_cli_json(tmp_path):
    out = tmp_path / "b.json"
    result = run_like_subprocess("benchmark", "fpn_r18", "scrnet_effl0", "--size", "64", "64", "--rounds", "3",
                                 "--runtime", "torch", "onnxruntime", "--json", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [(r["model"], r["runtime"]) for r in report["results"]] == [
        ("fpn_r18", "torch"), ("fpn_r18", "onnxruntime"), ("scrnet_effl0", "torch"), ("scrnet_effl0", "onnxruntime")]
    for r in report["results"]:
        assert {"model", "ms_median", "fps", "peak_mem_mb", "ms_p90", "runs"} <= set(r)
        assert r["runs"] == report["results"][0]["runs"] and r["peak_mem_mb"] > 0 and r["fps"] > 0
    assert report["results"][0]["ratio_to_first"] == 1.0
    assert {"machine", "torch", "threads", "dtype"} <= set(report["conditions"])
    bad = run_like_subprocess("benchmark", "resnet9")
    assert bad.returncode == 2 and "unknown model 'resnet9'" in bad.stderr


def test_carafe_mode_exports_and_matches_at_two_sizes(tmp_path):
    model = calibrated(scrnet.create_model("scrnet_effl0", num_classes=5, srm={"mode": "carafe"}))
    for srm in model.decoder.refine:  # kernels far from uniform, so the check sees the reassembly
        torch.nn.init.normal_(srm.carafe.encode.weight, std=0.2)
    path = export_onnx(model, tmp_path / "carafe.onnx", size=SIZES[0])
    results = check_onnx(model, path, SIZES)
    assert all(r.ok for r in results), [r.describe() for r in results]


def test_guided_gate_with_bounded_offsets_exports_and_matches_at_two_sizes(tmp_path):
    model = calibrated(scrnet.create_model("scrnet_effl0", num_classes=5,
                                           srm={"gate": "guided", "offset_range": 1.0}))
    for srm in model.decoder.refine:  # offsets and a gate that vary, so the check sees both
        torch.nn.init.normal_(srm.offset.weight, std=0.05)
        torch.nn.init.normal_(srm.gate.weight, std=0.05)
    path = export_onnx(model, tmp_path / "gated.onnx", size=SIZES[0])
    results = check_onnx(model, path, SIZES)
    assert all(r.ok for r in results), [r.describe() for r in results]


def test_an_export_request_is_validated_by_the_library_before_anything_loads(tmp_path):
    """The one validator of `scrnet export`'s request: a Python caller gets the same one-line errors, before the
    (here missing) checkpoint is read and before anything is written."""
    from scrnet.config import ConfigError
    from scrnet.deploy.export import ExportRequest, export

    missing, out = tmp_path / "missing.pth", tmp_path / "m.onnx"
    for fields, message in (({"opset": 15}, "--opset must be one of"), ({"size": (16, 64)}, "at least 32 32"),
                            ({"precision": "int8"}, "--int8 needs --calib"),
                            ({"calib": tmp_path}, "--calib is for --int8"),
                            ({"precision": "float16", "min_agreement": 1.5}, "between 0 and 1"),
                            ({"precision": "float16", "check": True}, "scrnet eval FILE.onnx")):
        with pytest.raises(ConfigError, match=message):
            export(ExportRequest(missing, out, **fields))
    assert list(tmp_path.iterdir()) == []
