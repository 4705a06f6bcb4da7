"""ONNX graph rewrites: zero pads folded into convolutions (export), shapes read before dequantising and float
logits (INT8): each the same function as before, checked in onnxruntime."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from scrnet.deploy.onnx_passes import fold_pads_into_convs  # noqa: E402
from scrnet.deploy.quantize import output_tail, read_shapes_before_dequantize  # noqa: E402


class Padded(nn.Module):
    """TensorFlow 'SAME' at stride 2 (pad right/bottom), a conv with its own padding behind a pad, and pads that
    must not fold: a non-zero value, reflection, and a pad whose result is also added to something."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, 2)
        self.own = nn.Conv2d(4, 4, 3, padding=1)
        self.valued = nn.Conv2d(4, 4, 1)
        self.reflected = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        y = self.down(F.pad(x, (0, 1, 0, 1)))
        y = self.own(F.pad(y, (2, 0, 1, 3)))
        y = self.valued(F.pad(y, (1, 1, 1, 1), value=1.0))
        y = self.reflected(F.pad(y, (1, 1, 1, 1), mode="reflect"))
        z = F.pad(y, (1, 1, 1, 1))
        return nn.functional.conv2d(z, torch.ones(4, 4, 3, 3)) + z[..., 1:-1, 1:-1]


def export(module, x, path):
    torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, opset_version=17, input_names=["image"],
                      output_names=["out"], dynamic_axes={"image": {2: "h", 3: "w"}, "out": {2: "h", 3: "w"}})
    return onnx.load(str(path))


def run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"image": x.numpy()})[0]


def test_zero_pads_fold_into_the_convs_and_nothing_else(tmp_path):
    torch.manual_seed(0)
    module, x = Padded(), torch.randn(1, 3, 32, 48)
    model = export(module, x, tmp_path / "m.onnx")
    before = run(model, x)
    assert sum(n.op_type == "Pad" for n in model.graph.node) == 5
    assert fold_pads_into_convs(model) == 2
    onnx.checker.check_model(model)
    pads = {n.name: list(next(a.ints for a in n.attribute if a.name == "pads")) for n in model.graph.node
            if n.op_type == "Conv"}
    assert pads["/down/Conv"] == [0, 0, 1, 1]  # begin h, w; end h, w
    assert pads["/own/Conv"] == [2, 3, 4, 1]  # its own 1 on every side plus (top 1, left 2, bottom 3, right 0)
    kept = [n for n in model.graph.node if n.op_type == "Pad"]
    assert len(kept) == 3  # the value-1 pad, the reflection and the pad that an Add also reads
    after = run(model, x)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(after, module(x).numpy(), rtol=1e-4, atol=1e-4)
    x2 = torch.randn(1, 3, 40, 64)  # the folded graph at another size
    with torch.no_grad():
        np.testing.assert_allclose(run(model, x2), module(x2).numpy(), rtol=1e-4, atol=1e-4)


def test_efficientnet_export_has_no_pad_left_in_the_backbone(tmp_path):
    from scrnet.deploy.export import export_onnx
    from scrnet.models import build_model, model_config

    model = build_model(model_config("scrnet_effl0", ["channels=16", "backbone_weights=null"])).eval()
    proto = onnx.load(str(export_onnx(model, tmp_path / "e.onnx", size=(64, 128))))
    pads = [n.name for n in proto.graph.node if n.op_type == "Pad"]
    assert not [p for p in pads if p.startswith("/backbone/")], pads
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        np.testing.assert_allclose(run(proto, x), model(x).numpy(), rtol=1e-4, atol=1e-4)


def quantized_graph():
    """image -> Q -> DQ -> (Shape, Relu); Relu -> Q -> DQ -> Shape only; outputs the Relu and both shapes."""
    scale, zero = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.UINT8,
                                                                                               [], [128])
    nodes = [helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq"),
             helper.make_node("Shape", ["dq"], ["shape1"], name="shape1"),
             helper.make_node("Relu", ["dq"], ["relu"], name="relu"),
             helper.make_node("QuantizeLinear", ["relu", "s", "z"], ["q2"], name="q2"),
             helper.make_node("DequantizeLinear", ["q2", "s", "z"], ["dq2"], name="dq2"),
             helper.make_node("Shape", ["dq2"], ["shape2"], name="shape2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in
                               (("relu", TensorProto.FLOAT, [1, 2, 3, 4]), ("shape1", TensorProto.INT64, [4]),
                                ("shape2", TensorProto.INT64, [4]))], [scale, zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shapes_read_the_quantised_tensor_and_unused_dequantisers_go():
    model = quantized_graph()
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    before = sess.run(None, {"image": x})
    assert read_shapes_before_dequantize(model) == 2
    onnx.checker.check_model(model)
    by_name = {n.name: n for n in model.graph.node}
    assert by_name["shape1"].input[0] == "q" and by_name["shape2"].input[0] == "q2"
    assert "dq" in by_name and "dq2" not in by_name  # dq still feeds the Relu; dq2 fed only a Shape
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"image": x})
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def test_output_tail_is_the_logits_resize_and_crop(tmp_path):
    from scrnet.deploy.export import export_onnx
    from scrnet.models import build_model, model_config

    model = build_model(model_config("scrnet_effl0", ["channels=16", "backbone_weights=null"])).eval()
    proto = onnx.load(str(export_onnx(model, tmp_path / "e.onnx", size=(64, 128))))
    tail = output_tail(proto)
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert tail and {ops[n] for n in tail} <= {"Resize", "Slice"} and "Resize" in {ops[n] for n in tail}
    producers = {o: n for n in proto.graph.node for o in n.output}
    assert producers["logits"].name in tail
