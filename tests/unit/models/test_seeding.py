"""Initial weights seeded by each part's place in the network (common random numbers between a study's arms)."""

import pytest
import torch

from scrnet.models import build_model, model_config
from scrnet.models.seeding import init_part, part_seed, seeded_init

PAIRS = [  # (variant A, variant B): overrides of scrnet_r18 with random backbone weights
    (["srm.mode=neighbor"], ["srm.mode=bilinear"]),
    (["srm.mode=neighbor"], ["srm.mode=dysample"]),
    (["srm.mode=carafe"], ["srm.mode=pixel"]),
    (["srm.gate=guided"], ["srm.gate=none"]),
    (["context.type=crm"], ["context.type=ppm"]),
    (["deep_supervision=false"], ["deep_supervision=true"]),
    (["fusion=reduce1x1"], ["fusion=conv3x3"]),
]


def _state(overrides: list[str], init_seed: int | None) -> dict[str, torch.Tensor]:
    cfg = model_config("scrnet_r18", ["num_classes=5", "channels=32", *overrides])
    if init_seed is None:
        torch.manual_seed(0)  # the shared stream, as the trainer seeds it
    return build_model(cfg, init_seed=init_seed).state_dict()


def _shared(a: dict, b: dict) -> list[str]:
    return [k for k in a if k in b and a[k].shape == b[k].shape and a[k].is_floating_point()]


@pytest.mark.parametrize("a, b", PAIRS, ids=lambda o: ",".join(o))
def test_two_variants_share_the_initial_weights_of_every_module_both_have(a, b):
    wa, wb = _state(a, 3), _state(b, 3)
    shared = _shared(wa, wb)
    assert any(k.startswith("decoder.classifier") for k in shared) and any(k.startswith("backbone.") for k in shared)
    different = [k for k in shared if not torch.equal(wa[k], wb[k])]
    assert different == []


def test_with_one_shared_stream_the_modules_built_after_the_variant_start_differently():
    """What per-module seeding fixes: drawn from one stream, neighbor and bilinear share no classifier weights."""
    wa, wb = _state(["srm.mode=neighbor"], None), _state(["srm.mode=bilinear"], None)
    different = [k for k in _shared(wa, wb) if not torch.equal(wa[k], wb[k])]
    assert "decoder.classifier.weight" in different and "decoder.refine.2.lateral.0.weight" in different
    assert not any(k.startswith("backbone.") for k in different)  # built before the SRMs


def test_seeded_weights_depend_on_the_seed_only_and_leave_the_process_generators_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = _state(["srm.mode=neighbor"], 7)
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(10)  # move the shared stream: a seeded build does not read it
    again, other = _state(["srm.mode=neighbor"], 7), _state(["srm.mode=neighbor"], 8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["decoder.classifier.weight"], other["decoder.classifier.weight"])


def test_a_part_seed_is_fixed_by_its_seed_and_qualified_name():
    # pinned: checkpoints and studies rely on the same seeds on every machine and version
    pinned = 5707115617613797862  # the first 63 bits of sha256("0/decoder.classifier")
    assert part_seed(0, "decoder.classifier") == part_seed(0, "decoder.classifier") == pinned
    assert part_seed(1, "decoder.classifier") != part_seed(0, "decoder.classifier")
    assert part_seed(0, "decoder.refine.0") != part_seed(0, "decoder.refine.1")


def test_parts_nest_by_name_and_do_nothing_outside_a_seeded_build():
    def draw(name: str) -> torch.Tensor:
        with init_part(name):
            return torch.rand(3)

    with seeded_init(5):
        with init_part("decoder"):
            nested = draw("refine.0")
    with seeded_init(5):
        torch.rand(100)  # draws of the root do not move a part's weights
        with init_part("decoder"):
            assert torch.equal(draw("refine.0"), nested)
    gen = torch.Generator().manual_seed(part_seed(5, "decoder.refine.0"))
    assert torch.equal(nested, torch.rand(3, generator=gen))
    torch.manual_seed(1)
    plain = draw("refine.0")
    torch.manual_seed(1)
    assert torch.equal(plain, torch.rand(3))
