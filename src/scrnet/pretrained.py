"""Loading a model from wherever it lives: ``scrnet.from_pretrained(source, revision=None)``.

A source is one of
- a training or inference checkpoint file (``.pth``, :func:`scrnet.load_checkpoint`);
- a published model folder (written by ``scrnet publish``): ``config.json`` + ``model.safetensors`` (+ the card);
- ``hf://ORG/NAME[@REVISION]``, a Hugging Face Hub repository holding such a folder, fetched with
  ``huggingface_hub.hf_hub_download`` (the optional ``hub`` extra), which honours ``HF_HUB_OFFLINE``,
  ``HF_HUB_CACHE``/``HF_HOME`` and the local cache. ``revision`` (or ``@REVISION``) pins a branch, tag or commit.

Each gives the same :class:`scrnet.LoadedCheckpoint`. A published folder's ``config.json`` carries its own
``format_version`` (:data:`FOLDER_FORMAT`); the run config inside it carries the config format version, upgraded
as for checkpoints. Every problem is one :class:`~scrnet.checkpoint_io.CheckpointError` line naming the file or key.
"""

import json
import re
from dataclasses import replace
from pathlib import Path

import torch

from .checkpoint_io import CheckpointError, sha256_of
from .config import ConfigError, config_from_dict, normalization
from .errors import RequestError
from .loading import LoadedCheckpoint, checked_labels, load_checkpoint, load_weights, recorded_iterations
from .models import build_model
from .overrides import first_line

FOLDER_FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
HF_PREFIX = "hf://"
# keys of config.json this version writes (and reads); a newer folder may hold others
FOLDER_KEYS = frozenset({"format", "format_version", "scrnet_version", "config", "class_names", "palette",
                         "normalization", "eval_protocol", "weights", "compute", "metrics", "provenance"})


_HUB_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}")


def check_repo_id(repo_id: str, what: str = "a Hub repository id") -> None:
    """The one validator of Hub repository ids (loading ``hf://`` and ``publish --push``): ``ORG/NAME``, each part
    letters, digits, '-', '_', '.', starting with a letter or digit, at most 96 characters, no '--' or '..', not
    ending in '.', '-' or '.git'. Anything else is a CheckpointError quoting the id, before any network or file
    access."""
    parts = repo_id.split("/")
    if (len(parts) != 2 or not all(_HUB_PART.fullmatch(p) for p in parts) or "--" in repo_id or ".." in repo_id
            or repo_id.endswith(".git")):
        raise CheckpointError(f"{what} must be ORG/NAME (letters, digits, '-', '_', '.'; no '..' or '--'), got "
                              f"{repo_id!r}")


def parse_hub_id(source: str, revision: str | None = None) -> tuple[str, str | None]:
    """``hf://org/name@rev`` -> ``("org/name", "rev")``; an explicit ``revision`` must agree with ``@rev``. The id
    and revision are checked by :func:`check_repo_id` and a revision pattern (no '..', no leading '/')."""
    spec = source[len(HF_PREFIX):]
    repo, _, rev = spec.partition("@")
    if spec.endswith("@"):
        raise CheckpointError(f"{source}: expected hf://ORG/NAME or hf://ORG/NAME@REVISION")
    check_repo_id(repo, f"{source}: the repository id")
    for r in (rev, revision):
        if r and (not _REVISION.fullmatch(r) or ".." in r):
            raise CheckpointError(f"{source}: revision {r!r} is not a branch, tag or commit name")
    if rev and revision and rev != revision:
        raise CheckpointError(f"{source}: revision {rev!r} in the id and revision={revision!r} disagree")
    return repo, rev or revision


def hub_download(source: str, revision: str | None = None) -> Path:
    """The folder of ``hf://org/name[@revision]`` in the local Hugging Face cache (downloaded when online)."""
    repo, rev = parse_hub_id(source, revision)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise CheckpointError(f"{source}: loading from the Hub needs huggingface_hub "
                              f"(pip install 'scrnet[hub]')") from None
    from ._version import __version__

    paths = []
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        try:
            paths.append(Path(hf_hub_download(repo, name, revision=rev, library_name="scrnet",
                                              library_version=__version__)))
        except Exception as exc:  # offline with nothing cached, no such repo/revision/file, network errors
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{source}: cannot get {name}{f' at revision {rev}' if rev else ''} "
                                  f"({type(exc).__name__}: {detail}); offline (HF_HUB_OFFLINE=1) only what is "
                                  f"already in the local cache can be loaded") from None
    if paths[0].parent != paths[1].parent:
        raise CheckpointError(f"{source}: config.json and model.safetensors come from different snapshots")
    return paths[0].parent


def read_folder_config(folder: Path) -> dict:
    """``config.json`` of a published folder, checked: present, JSON, a format this version reads."""
    path = folder / CONFIG_FILE
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a published SCRNet model: {', '.join(missing)} missing")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(meta, dict) or meta.get("format") != "scrnet-pretrained":
        raise CheckpointError(f"{path} is not an SCRNet model config (no \"format\": \"scrnet-pretrained\")")
    version = meta.get("format_version")
    unknown = sorted(set(meta) - FOLDER_KEYS)
    if not isinstance(version, int) or version > FOLDER_FORMAT:
        raise CheckpointError(f"{path} has folder format version {version}, newer than this scrnet's "
                              f"{FOLDER_FORMAT} (unknown keys: {unknown or 'none at the top level'}); upgrade scrnet")
    if unknown:
        raise CheckpointError(f"{path} has keys this scrnet does not know: {unknown}")
    for key, kind in (("config", dict), ("class_names", list), ("normalization", dict), ("weights", dict)):
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(f"{path}: no {key!r} {'object' if kind is dict else 'list'}")
    return meta


def load_folder(folder: str | Path, device: str = "cpu") -> LoadedCheckpoint:
    """A published model folder as a :class:`LoadedCheckpoint` (eval weights; no auxiliary heads)."""
    folder = Path(folder)
    meta = read_folder_config(folder)
    path = folder / CONFIG_FILE
    try:
        cfg = config_from_dict(meta["config"], origin=str(path))
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    except Exception as exc:  # keys or values this version does not know
        raise CheckpointError(f"{path}: its config does not fit this scrnet version: {first_line(exc)}") \
            from None
    weights = folder / WEIGHTS_FILE
    expected = meta["weights"].get("sha256")
    actual = sha256_of(weights) if expected else None
    if actual != expected:
        raise CheckpointError(f"{weights}: sha256 {actual} differs from {expected} recorded in {path} "
                              f"(a corrupted or replaced file)")
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise CheckpointError(f"cannot read {weights}: {str(exc).splitlines()[0]}") from None
    # eval weights only: the auxiliary heads were dropped when publishing
    model = build_model(replace(cfg.model, backbone_weights=None, deep_supervision=False))
    load_weights(model, state, weights)
    norm = normalization(cfg)
    model.set_normalization(norm.mean, norm.std)
    stored = meta["normalization"]
    if [list(norm.mean), list(norm.std)] != [list(stored.get("mean", [])), list(stored.get("std", []))]:
        raise CheckpointError(f"{path}: normalization {stored} disagrees with its config's data.mean/std")
    provenance = meta.get("provenance")
    iterations = provenance.get("trained_iterations") if isinstance(provenance, dict) else None
    names, palette = checked_labels(meta["class_names"], meta.get("palette", []), path)
    return LoadedCheckpoint(model.to(device).eval(), cfg, names, palette, norm, folder,
                            recorded_iterations(iterations))


class OnnxModel(torch.nn.Module):
    """An exported ONNX graph run in onnxruntime behind SCRNet's eval-mode interface (``B x 3 x H x W`` normalised
    float -> logits ``B x K x H x W``), so ``scrnet eval`` and ``scrnet predict`` score an exported file with the
    same code as the checkpoint. It has no parameters and no SRM offsets."""

    def __init__(self, path: str | Path):
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckpointError(f"{path}: running an ONNX file needs onnxruntime (pip install 'scrnet[export]')") \
                from None
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor, return_offsets: bool = False) -> torch.Tensor:
        if return_offsets:
            raise RequestError(f"{self.path}: an exported ONNX graph has no SRM offsets; use its checkpoint")
        out = self.session.run(["logits"], {"image": x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def load_onnx(path: str | Path) -> LoadedCheckpoint:
    """An ONNX file written by ``scrnet export``: the graph in onnxruntime plus the run config, classes, palette and
    normalisation its metadata holds."""
    path = Path(path)
    try:
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except ImportError:
        raise CheckpointError(f"{path}: reading an ONNX file needs onnx (pip install 'scrnet[export]')") from None
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if "scrnet.config" not in meta:
        raise CheckpointError(f"{path} holds no scrnet run config in its metadata (exported by an older scrnet, or "
                              f"not by scrnet export); export it again from its checkpoint")
    try:
        cfg = config_from_dict(json.loads(meta["scrnet.config"]), origin=str(path))
        names, palette = json.loads(meta["scrnet.class_names"]), json.loads(meta.get("scrnet.palette", "[]"))
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    except Exception as exc:
        raise CheckpointError(f"{path}: its scrnet metadata does not fit this version: {first_line(exc)}") from None
    names, palette = checked_labels(names, palette, path)
    return LoadedCheckpoint(OnnxModel(path).eval(), cfg, names, palette, normalization(cfg), path)


def from_pretrained(source: str | Path, revision: str | None = None, device: str = "cpu") -> LoadedCheckpoint:
    """Load a checkpoint file, a published folder, ``hf://ORG/NAME[@REVISION]`` or an ONNX file written by
    ``scrnet export`` (run in onnxruntime; see the module docstring)."""
    text = str(source)
    if text.startswith(HF_PREFIX):
        return load_folder(hub_download(text, revision), device)
    if revision is not None:
        raise CheckpointError(f"{source}: revision={revision!r} applies to hf:// ids only")
    path = Path(source)
    if path.is_dir():
        return load_folder(path, device)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {source} (expected a checkpoint file, a published model "
                                f"folder or hf://ORG/NAME[@REVISION])")
    if path.suffix.lower() == ".onnx":
        return load_onnx(path)
    return load_checkpoint(path, device)


def is_model_source(text: str) -> bool:
    """Whether ``text`` names something :func:`from_pretrained` may load (an existing path or an hf:// id)."""
    return text.startswith(HF_PREFIX) or Path(text).exists()
