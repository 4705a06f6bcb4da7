"""Initial weights seeded by each part's place in the network (``train.init_rng=per_module``).

With one shared random stream, every module draws its initial weights after the modules built before it, so a
variant that adds, removes or resizes one module (an SRM mode, say) changes the initial weights of every module built
after it, and two arms of a study run with the same seed share no initial weights at all. Here each part draws from
a generator of its own, seeded from ``(seed, its qualified name)`` (``decoder.refine.1.lateral``): a module two
variants both have starts from the same weights in both, whatever else either builds.

:func:`seeded_init` wraps the construction of a whole network; constructors mark their parts with
:func:`init_part` (a no-op outside :func:`seeded_init`, so a model built without a seed draws from the shared stream
exactly as before). The process's generators are left where they were: building a model under :func:`seeded_init`
draws nothing from them.
"""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

# (seed, qualified name of the part being built) while a network is built under seeded_init; None otherwise
_SCOPE: ContextVar[tuple[int, str] | None] = ContextVar("scrnet_init_scope", default=None)


def part_seed(seed: int, name: str) -> int:
    """The seed of part ``name`` (a qualified module name) of a network seeded with ``seed``: 63 bits of
    SHA-256 of ``"seed/name"``, the same on every machine and Python version."""
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextmanager
def _drawing_for(seed: int, name: str) -> Iterator[None]:
    token = _SCOPE.set((seed, name))
    try:
        with torch.random.fork_rng(devices=[]):  # the CPU generator: modules are built on the CPU
            torch.manual_seed(part_seed(seed, name))
            yield
    finally:
        _SCOPE.reset(token)


@contextmanager
def seeded_init(seed: int | None) -> Iterator[None]:
    """Build a network inside this block to seed its parts by name (``seed`` None: the shared stream, as
    before). The parts not marked with :func:`init_part` draw from the network's own root generator."""
    if seed is None:
        yield
        return
    with _drawing_for(int(seed), ""):
        yield


@contextmanager
def init_part(name: str) -> Iterator[None]:
    """Mark the construction of the part an attribute ``name`` of the module being built will hold: inside
    :func:`seeded_init` its weights are drawn from its own generator (nested parts get dotted names); outside it,
    nothing changes."""
    scope = _SCOPE.get()
    if scope is None:
        yield
        return
    seed, prefix = scope
    with _drawing_for(seed, f"{prefix}.{name}" if prefix else name):
        yield
