"""torch.compile sees each model as one graph, also under autocast (the float32 sections of SRM, DySample and CRM
switch autocast off inside the graph): a graph break there made a GPU run with torch 2.11 recompile until Dynamo's
limit and run mostly eagerly. Traced with the eager backend, so no code is generated and the test stays fast."""

import pytest
import torch

import scrnet


@pytest.mark.slow  # ~40 s per mode on 2 cores: Dynamo tracing at two sizes
@pytest.mark.parametrize("srm_mode", ["neighbor", "dysample"])
def test_one_graph_under_bf16_autocast_at_two_sizes(srm_mode):
    torch._dynamo.reset()
    model = scrnet.create_model("scrnet_effl0", num_classes=5, channels=16, srm={"mode": srm_mode}).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # fullgraph: a break raises
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for size in ((64, 128), (96, 160)):
            out = compiled(torch.randn(1, 3, *size))
            assert out.shape == (1, 5, *size)
