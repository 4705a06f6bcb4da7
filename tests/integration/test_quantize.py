"""INT8 and float16 ONNX graphs: the float32 island (sampling grids, GridSample, attention) is found in the graph
and survives conversion, the CLI writes files that scrnet eval scores, and bad requests are one line."""

import json
import re

import numpy as np
import pytest
import torch
from cli_helpers import run

import scrnet
from scrnet.config import load_config
from scrnet.data.synthetic import generate_synthetic
from scrnet.engine.trainer import train

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from scrnet.deploy import quantize  # noqa: E402
from scrnet.deploy.export import export_onnx  # noqa: E402
from scrnet.deploy.island import Island, IslandError, check_island, expected_island, float_island  # noqa: E402
from scrnet.deploy.quantize import convert_fp16, find_images  # noqa: E402


def producers(model):
    return {out: node for node in model.graph.node for out in node.output}


def grid_slice_casts(model, op_type: str | None = None, index: int = 1, kinds=("Cast",)) -> list[str]:
    """Cast-to-float16 nodes (or nodes of ``kinds``) on the way from any convolution to input ``index`` of every
    ``op_type`` node; by default the sampling coordinates: GridSample's grid, or the input of the gather form's
    Floor nodes."""
    prod, found, seen = producers(model), [], set()
    if op_type is None:
        stack = [n.input[1] if n.op_type == "GridSample" else n.input[0] for n in model.graph.node
                 if n.op_type == "GridSample" or (n.op_type == "Floor" and "/sampler/" in n.name)]
        assert stack, "no sampler in the graph"
    else:
        stack = [n.input[index] for n in model.graph.node if n.op_type == op_type]
    while stack:
        node = prod.get(stack.pop())
        if node is None or node.name in seen or node.op_type == "Conv":
            continue
        seen.add(node.name)
        if node.op_type == "Shape":  # only the shape flows on: values before it do not reach the coordinates
            continue
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):  # the quantised output of an offset conv is
            up = prod.get(node.input[0])                               # the boundary, like the conv itself
            if up is not None and up.op_type == "QuantizeLinear":
                up = prod.get(up.input[0])
            if up is not None and up.op_type == "Conv":
                continue
        if node.op_type == "Cast" and "Cast" in kinds and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16
                                                              for a in node.attribute):
            found.append(node.name)
        elif node.op_type != "Cast" and node.op_type in kinds:
            found.append(node.name)
        stack.extend(node.input)
    return found


def energy_casts(model) -> list[str]:
    """Cast-to-float16 nodes between each Softmax and the products (or convs) that compute its input."""
    prod, found, stack = producers(model), [], [n.input[0] for n in model.graph.node if n.op_type == "Softmax"]
    while stack:
        node = prod.get(stack.pop())
        if node is None or node.op_type in ("MatMul", "Conv"):
            continue
        if node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in node.attribute):
            found.append(node.name)
        stack.extend(node.input)
    return found


@pytest.fixture(scope="module", params=["gather", "gridsample"])
def effl0_onnx(tmp_path_factory, request):
    """A random scrnet_effl0 whose position-attention energies exceed float16's range: key = query, both x 5000,
    so each position's energy with itself is |q|^2 ~ 1e5 (a fresh model's energies are ~0.006)."""
    torch.manual_seed(0)
    model = scrnet.create_model("scrnet_effl0", num_classes=5, context={"attention": "danet"}).eval()
    pos = model.decoder.context.attention[1]
    with torch.no_grad():
        pos.query.weight.mul_(5000)
        pos.key.weight.copy_(pos.query.weight)
        pos.key.bias.copy_(pos.query.bias)
        for srm in model.decoder.refine:
            torch.nn.init.normal_(srm.offset.weight, std=0.05)
    x = torch.randn(1, 3, 128, 256)
    path = export_onnx(model.fuse(), tmp_path_factory.mktemp("onnx") / "fp32.onnx", size=(128, 256),
                       sampler=request.param)
    return model, path, x


def test_float_island_is_found_from_what_the_graph_computes(effl0_onnx):
    model_pt, path, _ = effl0_onnx
    model = onnx.load(str(path))
    island = float_island(model)
    assert (island.sampling_sites, island.attention_products) == expected_island(model_pt) == (3, 4)
    assert island.softmaxes == 5  # SRM's three neighbour-weight softmaxes, DANet's two
    ops = {n.name: n.op_type for n in model.graph.node}
    size_maths = ("Constant", "Unsqueeze", "Concat", "Gather", "Shape", "Reshape", "Transpose")  # and the map's layout
    sampler = {n for n, op in ops.items() if op == "GridSample" or "/sampler/" in n}
    assert {ops[n] for n in sampler - island.nodes} <= set(size_maths)
    assert {n for n, op in ops.items() if op in ("MatMul", "Softmax") and "/context/attention/" in n} <= island.nodes
    assert {n for n, op in ops.items() if op == "CumSum"} <= island.nodes  # the pixel-centre grid
    assert {n for n, op in ops.items() if op == "Floor"} <= island.nodes  # the gather form's corners
    assert not any(ops[n] == "Conv" for n in island.nodes)
    assert all("/backbone/" not in n or ops[n] == "Constant" for n in island.nodes)  # constants are shared


def test_float_island_does_not_depend_on_node_names(effl0_onnx):
    """Regression (issue 25 #7): the island was found by the TorchScript exporter's scope names; with other names
    it lost the gather form's sampler and the attention, and sampling coordinates were quantised silently."""
    _, path, _ = effl0_onnx
    model = onnx.load(str(path))
    before = float_island(model)
    position = {n.name: i for i, n in enumerate(model.graph.node)}
    for i, node in enumerate(model.graph.node):
        node.name = f"node_{i}"
    after = float_island(model)
    assert {f"node_{position[n]}" for n in before.nodes} == after.nodes
    assert (after.sampling_sites, after.attention_products, after.softmaxes) == (3, 4, 5)


def test_float_island_in_a_dynamo_export(tmp_path):
    """The torch.export-based exporter names nodes differently and writes other ops; the island is the same in
    kind: every sampling site and attention product the network computes."""
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = scrnet.create_model("scrnet_effl0", num_classes=5, context={"attention": "danet"}).eval()
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, 64, 128),), str(tmp_path / "d.onnx"), dynamo=True,
                          opset_version=18, input_names=["image"], output_names=["logits"], verbose=False)
    graph = onnx.load(str(tmp_path / "d.onnx"))
    island = float_island(graph)
    assert (island.sampling_sites, island.attention_products) == expected_island(model) == (3, 4)
    assert not any("/sampler/" in n.name for n in graph.graph.node)  # the old name-based search found nothing
    check_island(island, *expected_island(model), where="d.onnx")


def test_an_island_that_misses_the_network_is_refused(effl0_onnx, tmp_path, monkeypatch):
    _, path, _ = effl0_onnx
    with pytest.raises(IslandError, match="3 sampling sites expected, 0 found"):
        check_island(Island(), 3, 0, where="m.onnx")
    monkeypatch.setattr(quantize, "float_island", lambda model: Island())  # as if the exporter's graph changed
    with pytest.raises(IslandError, match="sampling sites expected"):
        convert_fp16(path, tmp_path / "h.onnx", (3, 4))
    assert not (tmp_path / "h.onnx").exists()


def test_a_conversion_that_rounds_inside_the_island_is_refused(effl0_onnx, tmp_path, monkeypatch):
    """Without the pass that removes the converter's float16 round trips between island nodes, the verification
    finds the rounded edge and refuses the graph."""
    _, path, _ = effl0_onnx
    monkeypatch.setattr(quantize, "drop_fp16_round_trips", lambda model, nodes: 0)
    with pytest.raises(IslandError, match="reads a rounded value of island node"):
        convert_fp16(path, tmp_path / "h.onnx", (3, 4))


def test_fp16_keeps_the_island_float32_end_to_end(effl0_onnx, tmp_path):
    _, path, x = effl0_onnx
    half_path = tmp_path / "fp16.onnx"
    info = convert_fp16(path, half_path, (3, 4))
    assert "3 sampling sites, 4 attention products" in info["island"]
    half = onnx.load(str(half_path))
    assert grid_slice_casts(half) == []  # no float16 rounding between the offset convs and the sampling
    # nor of attention energies (SRM's mask softmax too): nothing rounds between an energy's product and its softmax
    assert energy_casts(half) == []
    quantize.verify_island(half, float_island(onnx.load(str(path))), "fp16.onnx")
    ref = ort.InferenceSession(str(path)).run(None, {"image": x.numpy()})[0]
    sess = ort.InferenceSession(str(half_path))
    assert sess.get_inputs()[0].type == "tensor(float)" and sess.get_outputs()[0].type == "tensor(float)"
    out = sess.run(None, {"image": x.numpy()})[0]
    # the energies exceed 65504: any float16 edge inside the attention gives inf, then NaN after the softmax
    assert np.isfinite(out).all()
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.999
    meta = {p.key: p.value for p in half.metadata_props}
    assert meta["scrnet.precision"] == "float16"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = generate_synthetic(tmp_path_factory.mktemp("data"), num_train=4, num_val=3, size=(64, 128), seed=1)
    work = tmp_path_factory.mktemp("run")
    cfg = load_config(None, [f"data.root={root}", "data.type=folder", "model.name=scrnet_effl0",
                             "model.num_classes=9", "model.channels=16", "model.backbone_weights=null",
                             "train.max_iters=60", "train.batch_size=2", "train.num_workers=0",
                             "train.val_interval=0", "train.checkpoint_interval=60", "train.tensorboard=false",
                             "data.train.crop_size=[64,64]", "data.train.scale=[128,64]"])
    train(cfg, work)
    return root, work / "checkpoints" / "iter_00000060.pth"


def test_cli_int8_and_fp16_files_are_scored_by_scrnet_eval(trained, tmp_path):
    root, ckpt = trained
    # 7 images: 6 calibrate, every fourth (1) is held out for the agreement, which the quantiser never saw. On a
    # held-out image this 60-iteration model agrees on ~94-95% (on its calibration images it had read above 95%):
    # the gate is lowered to 90% for this tiny model only
    code, out, err = run("export", ckpt, "--onnx", tmp_path / "m8.onnx", "--int8", "--calib", root,
                         "--calib-images", 7, "--size", 64, 128, "--min-agreement", 0.9)
    assert code == 0, err
    assert "INT8 QDQ" in out and "calibrated on 6 images" in out
    agreement = float(re.search(r"argmax agreement with the float32 graph: ([0-9.]+)% of the pixels of 1 "
                                r"held-out image \(not used for calibration\)", out).group(1))
    assert 90 <= agreement <= 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m8.onnx"]  # the float32 intermediate is gone
    model = onnx.load(str(tmp_path / "m8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and "Floor" in ops and "GridSample" not in ops  # the gather form
    assert grid_slice_casts(model) == []
    # the sampling coordinates are never quantised: no Q/DQ between the offset convs and the sampler
    assert grid_slice_casts(model, kinds=("QuantizeLinear", "DequantizeLinear")) == []
    prod = producers(model)
    assert prod["logits"].op_type == "Slice"  # float logits: the resize and crop after the last conv stay float32
    assert not [n.name for n in model.graph.node if n.op_type == "Shape" and n.input[0] in prod
                and prod[n.input[0]].op_type == "DequantizeLinear"]  # shapes are read before dequantising
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["scrnet.precision"] == "int8" and "scrnet.config" in meta
    code, out, err = run("export", ckpt, "--onnx", tmp_path / "m16.onnx", "--fp16", "--size", 64, 128)
    assert code == 0, err
    scores = {}
    for name in ("m8", "m16"):
        code, out, err = run("eval", tmp_path / f"{name}.onnx", "--json", tmp_path / f"{name}.json")
        assert code == 0, err
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())["miou"]
    code, _, err = run("eval", ckpt, "--json", tmp_path / "ref.json")
    ref = json.loads((tmp_path / "ref.json").read_text())["miou"]
    assert abs(scores["m16"] - ref) < 0.01  # float16 with a float32 island: the checkpoint's mIoU
    # INT8: within 3 points of the checkpoint's mIoU. This 60-iteration model is not the same on every CPU (training
    # is not bit-reproducible across instruction sets) and neither is its INT8 error: measured 0.04 points on an
    # AVX-512 VNNI machine (mIoU 21.3) and 2.2 on the CI runner (27.4), with 6 calibration images and one held out
    assert abs(scores["m8"] - ref) < 0.03


def test_a_graph_below_the_minimum_agreement_is_refused_and_nothing_is_written(trained, tmp_path):
    root, ckpt = trained
    (tmp_path / "m8.onnx").write_bytes(b"not a graph")  # a user's file: never replaced
    code, out, err = run("export", ckpt, "--onnx", tmp_path / "out" / "m8.onnx", "--int8", "--calib", root,
                         "--calib-images", 5, "--size", 64, 128, "--min-agreement", 1)
    assert code == 1 and "agrees with float32 on" in err and "below the minimum 100.00%" in err, err
    assert len(err.strip().splitlines()) == 1
    assert list((tmp_path / "out").iterdir()) == []  # no graph, no intermediate left behind
    code, out, err = run("export", ckpt, "--onnx", tmp_path / "m8.onnx", "--fp16", "--size", 64, 128)
    assert code == 2 and "not an ONNX graph scrnet wrote" in err and str(tmp_path / "m8.onnx") in err
    assert (tmp_path / "m8.onnx").read_bytes() == b"not a graph"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m8.onnx", "out"]


def test_export_replaces_a_graph_scrnet_wrote(trained, tmp_path):
    _, ckpt = trained
    for precision in ([], ["--fp16"]):
        code, out, err = run("export", ckpt, "--onnx", tmp_path / "m.onnx", "--size", 64, 128, *precision)
        assert code == 0, err
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert meta["scrnet.precision"] == "float16"
    assert "argmax agreement with the float32 graph" in out and "4 random noise inputs at 64x128" in out
    assert "not a quality gate" in out  # noise shows the conversion runs; it is no quality gate
    assert oct((tmp_path / "m.onnx").stat().st_mode & 0o777) != "0o600"  # ordinary permissions, not mkstemp's


def test_calibration_images_skip_label_folders_and_spread_evenly(tmp_path):
    for sub in ("train/images", "train/masks", "val/gtFine/x"):
        (tmp_path / sub).mkdir(parents=True)
    for i in range(10):
        (tmp_path / "train/images" / f"{i:02d}.png").write_bytes(b"")
        (tmp_path / "train/masks" / f"{i:02d}.png").write_bytes(b"")
    (tmp_path / "val/gtFine/x/a.png").write_bytes(b"")
    found = find_images(tmp_path, 4)
    assert [p.name for p in found] == ["00.png", "03.png", "06.png", "09.png"]
    assert all("images" in p.parts for p in find_images(tmp_path, 100))


@pytest.mark.parametrize("args,message", [
    (["--int8"], "--int8 needs --calib"),
    (["--int8", "--fp16", "--calib", "."], "exclude each other"),
    (["--fp16", "--check"], "scrnet eval"),
    (["--calib", "."], "--calib is for --int8"),
    (["--min-agreement", "0.9"], "--min-agreement is for --int8 or --fp16"),
    (["--fp16", "--min-agreement", "2"], "between 0 and 1"),
])
def test_bad_precision_requests_are_one_line(trained, tmp_path, args, message):
    _, ckpt = trained
    code, out, err = run("export", ckpt, "--onnx", tmp_path / "m.onnx", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_calibration_folder_without_images_is_one_line(trained, tmp_path):
    _, ckpt = trained
    (tmp_path / "empty").mkdir()
    code, _, err = run("export", ckpt, "--onnx", tmp_path / "m.onnx", "--int8", "--calib", tmp_path / "empty")
    assert code == 2 and "no image" in err and str(tmp_path / "empty") in err
