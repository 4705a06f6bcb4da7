"""``scrnet publish``: a trained model as the field shares weights, a folder that loads with no access to the run.

The folder holds ``model.safetensors`` (eval weights only: the auxiliary heads are dropped), ``config.json`` (the
resolved run config, class names, palette, input normalisation, eval protocol, weights' sha256, compute, metrics,
versions) and ``README.md``, a model card with the Hugging Face Hub's YAML header (``model-index`` holds the
metrics of ``--eval``). It is written to a temporary folder beside ``OUT_DIR`` and renamed into place, so a failure
leaves nothing half-written. An existing ``OUT_DIR`` is only ever replaced (``force``) when it is itself a published
SCRNet folder holding nothing but the files publish writes; anything else of the user's is refused, never deleted.
``push`` uploads it with ``huggingface_hub`` (the ``hub`` extra).
"""

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from .._version import __version__
from ..checkpoint_io import CheckpointError, sha256_of
from ..config import Config, config_to_dict
from ..errors import RequestError, ScrnetError
from ..evaluation.run import eval_protocol
from ..loading import LoadedCheckpoint, weights_digest
from ..pretrained import CARD_FILE, CONFIG_FILE, FOLDER_FORMAT, WEIGHTS_FILE, check_repo_id, from_pretrained
from ..profiling.flops import compute_report

DATASET_NAMES = {"cityscapes": "Cityscapes", "bdd100k": "BDD100K", "ade20k": "ADE20K", "folder": "custom"}
PAPER_BIBTEX = """@article{wang2025scrnet,
  title   = {A Deep Semantic Segmentation Network with Semantic and Contextual Refinements},
  author  = {Wang, Zhiyan and Liu, Deyin and Wu, Lin Yuanbo and Wang, Song and Guo, Xin and Qi, Lin},
  journal = {IEEE Transactions on Multimedia},
  year    = {2025},
  doi     = {10.1109/TMM.2025.3543037},
  note    = {arXiv:2412.08671}
}"""
LIBRARY_BIBTEX = f"""@software{{scrnet_library,
  title   = {{SCRNet: a documented reconstruction of SRM and CRM for semantic segmentation in PyTorch}},
  version = {{{__version__}}},
  license = {{Apache-2.0}}
}}"""


@dataclass
class PublishResult:
    folder: Path
    sha256: str
    num_params: int
    gmacs: float
    eval_size: tuple[int, int]


def eval_size(cfg: Config) -> tuple[int, int]:
    """The network's input size at evaluation (H, W) for the compute figure: the slide window, or the eval
    resize (long, short side, landscape), or 1024x2048 when images are scored at their own size."""
    if cfg.eval.mode == "slide":
        return tuple(cfg.eval.crop_size)
    if cfg.data.eval.scale:
        long_side, short_side = cfg.data.eval.scale
        return (short_side, long_side)
    return (1024, 2048)


def read_eval_json(path: str | Path, loaded: LoadedCheckpoint, source: str | Path) -> dict:
    """The output of ``scrnet eval --json``, checked against the model ``loaded`` from ``source``: its classes must be
    this model's, and what it records as measured (``measured``: the weights' digest, the protocol, the scrnet
    version) must be these weights, not another checkpoint's or an exported graph's. Read as data."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read --eval {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(metrics, dict) or "miou" not in metrics or not isinstance(metrics.get("iou"), dict):
        raise CheckpointError(f"--eval {path} is not the output of `scrnet eval --json` (no miou/iou)")
    class_names = loaded.class_names
    if list(metrics["iou"]) != list(class_names):
        raise CheckpointError(f"--eval {path} scores classes {list(metrics['iou'])[:3]}... but the model predicts "
                              f"{class_names[:3]}...")
    measured = metrics.get("measured")
    if not isinstance(measured, dict) or not isinstance(measured.get("protocol"), dict):
        raise CheckpointError(f"--eval {path} does not record what it measured (written by an earlier scrnet "
                              f"that did not record it); score {source} again with `scrnet eval {source} --json OUT`")
    if measured.get("kind") != "weights":
        raise CheckpointError(f"--eval {path} scored an exported {measured.get('kind')!r} graph, not the weights of "
                              f"{source}; a model card states the figures of the weights it publishes: score {source} "
                              f"with `scrnet eval {source} --json OUT`")
    digest = weights_digest(loaded.model)
    if measured.get("sha256") != digest:
        raise CheckpointError(f"--eval {path} measured other weights (sha256 {str(measured.get('sha256'))[:12]}...) "
                              f"than {source} (sha256 {digest[:12]}...); score {source} with `scrnet eval {source} "
                              f"--json OUT`")
    return metrics


def shareable_config(cfg: Config) -> dict:
    """The run config as published: local paths (the data root, a backbone weights file) are left out."""
    out = config_to_dict(cfg)
    out["data"]["root"] = ""
    if out["model"]["backbone_weights"] not in (None, "imagenet"):
        out["model"]["backbone_weights"] = None
    return out


def _pct(value) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def card_metadata(loaded: LoadedCheckpoint, metrics: dict | None, name: str, license: str) -> dict:
    """The model card's YAML header (the Hub's model card metadata, with ``model-index`` from ``metrics``). Only what
    the checkpoint and the eval JSON record: ``datasets`` (what the model was trained on) only when the checkpoint
    records that scrnet trained it; the evaluation data set only from the eval JSON."""
    meta = {"license": license, "library_name": "scrnet", "pipeline_tag": "image-segmentation",
            "tags": ["semantic-segmentation", "scrnet", "pytorch", loaded.config.model.backbone]}
    trained_on = loaded.config.data.type if loaded.trained_iterations is not None else None
    if trained_on and trained_on != "folder":
        meta["datasets"] = [trained_on]
        meta["tags"].append(trained_on)
    if metrics:
        dataset = str(metrics.get("dataset") or "unknown")
        figures = [("mean_iou", "mIoU (%)", _pct(metrics["miou"])), ("accuracy", "pixel accuracy (%)",
                                                                      _pct(metrics.get("aacc")))]
        published = metrics.get("boundary_iou")
        if isinstance(published, dict) and published.get("mean") is not None:
            figures.append(("boundary_iou", f"Boundary IoU (Cheng et al. 2021, dilation ratio "
                                            f"{published.get('dilation_ratio')}) (%)", _pct(published["mean"])))
        if metrics.get("mbiou") is not None:
            width = metrics.get("boundary_width", loaded.config.eval.boundary_width)
            figures.append(("biou_band", f"BIoU*: scrnet's IoU in a fixed {width}-px band (%)",
                            _pct(metrics["mbiou"])))
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": "image-segmentation", "name": "Semantic Segmentation"},
            "dataset": {"type": dataset, "name": DATASET_NAMES.get(dataset, dataset),
                        "split": str(metrics.get("split") or "unknown")},
            "metrics": [{"type": t, "name": n, "value": v} for t, n, v in figures if v is not None],
        }]}]
    return meta


def training_lines(loaded: LoadedCheckpoint) -> list[str]:
    """The card's training section: the recipe only when the checkpoint records that scrnet trained the weights."""
    cfg = loaded.config
    m, t, d = cfg.model, cfg.train, cfg.data
    o = t.optim
    if loaded.trained_iterations is None:
        return ["## Training", "",
                "Unknown: the checkpoint these weights were published from does not record that scrnet trained them "
                "(no training iteration), so no data set, schedule or recipe is claimed here. `config.json` holds "
                "the configuration stored with the weights, which is not a record of how they were trained.", ""]
    return [
        "## Training recipe", "",
        f"As recorded in the training checkpoint: {loaded.trained_iterations} of {t.max_iters} iterations.", "",
        f"- data: {DATASET_NAMES.get(d.type, d.type)} `{d.train_split}`, random resize {d.train.ratio_range} of "
        f"{d.train.scale} (long, short side), crops {d.train.crop_size}, flip {d.train.flip_prob}, photometric "
        f"distortion {'on' if d.train.photometric else 'off'}",
        f"- total batch {t.batch_size}, {o.optimizer} lr {o.lr} (head x{o.head_lr_mult}), weight decay "
        f"{o.weight_decay}, poly {o.poly_power}, warm-up {o.warmup_iters}",
        f"- loss: cross-entropy{' with OHEM' if t.loss.ohem else ''}, deep supervision "
        f"{'x' + str(t.loss.aux_weight) if m.deep_supervision else 'off'}; AMP `{t.amp}`; seed {t.seed}",
        "- backbone initialised from "
        + (f"`{m.backbone_weights}`" if m.backbone_weights in (None, "imagenet") else "a local weights file"),
        ""]


def card_body(loaded: LoadedCheckpoint, metrics: dict | None, name: str, result: PublishResult) -> str:
    """The model card's Markdown: what the model is, how to load it, its training (as recorded), its evaluation
    (from ``metrics``, the eval JSON), its size and compute, and the citations."""
    return "\n".join([*_intro_lines(loaded, name), *training_lines(loaded),
                      *_evaluation_lines(loaded.config, metrics), *_compute_lines(result)])


def _intro_lines(loaded: LoadedCheckpoint, name: str) -> list[str]:
    m, d = loaded.config.model, loaded.config.data
    trained_on = (f"{DATASET_NAMES.get(d.type, d.type)}, `{d.train_split}` split"
                  if loaded.trained_iterations is not None else "unknown: see Training")
    return [
        f"# {name}", "",
        f"A semantic segmentation model for the SCRNet library (published with scrnet {__version__}): `{m.name}` "
        f"({m.backbone} backbone, decoder width {m.channels}, SRM mode `{m.srm.mode}`, context "
        f"`{m.context.type}`), {len(loaded.class_names)} classes.", "",
        "SCRNet here is a documented **reconstruction** of the network of Wang et al., \"A Deep Semantic "
        "Segmentation Network with Semantic and Contextual Refinements\" (IEEE TMM 2025): the paper's full text "
        "was not available to the library, so every detail it does not pin down is a named config option "
        "(recorded in `config.json`). These weights are not the paper's and its figures do not apply to them.", "",
        "## Intended use and limits", "",
        "Per-pixel classification of RGB images into the classes below, in conditions like those of its training "
        f"data ({trained_on}). Expect lower accuracy on other "
        "cameras, scenes, weather and resolutions than the evaluation below shows; it is not a safety-rated "
        "perception component. Classes: " + ", ".join(f"`{c}`" for c in loaded.class_names) + ".", "",
        "## How to load", "",
        "```python", "import scrnet", "",
        f"seg = scrnet.Segmenter(\"{name if '/' in name else 'hf://ORG/' + name}\")   # or a local folder",
        "labels = seg(\"street.jpg\").labels           # H x W class indices at the image's resolution",
        "loaded = scrnet.from_pretrained(\"path/to/this/folder\")   # model, config, classes, normalisation",
        "```", "",
        "```bash", "pip install 'scrnet[hub]'",
        "scrnet predict path/to/this/folder street.jpg --out preds", "```", "",
        f"Inputs are RGB normalised with mean {list(loaded.normalization.mean)} and std "
        f"{list(loaded.normalization.std)} (on 0..1 values); `scrnet` applies this and the eval protocol itself.",
        ""]


def _evaluation_lines(cfg: Config, metrics: dict | None) -> list[str]:
    protocol = metrics["measured"]["protocol"] if metrics else eval_protocol(cfg)  # how the figures were measured
    lines = [
        "## Evaluation", "",
        f"Protocol: `{protocol.get('mode')}` inference"
        + (f", images resized to fit {protocol['resize']}" if protocol.get("resize") else ", images at their own size")
        + (f", windows {protocol['crop_size']} every {protocol.get('stride')}" if protocol.get("crop_size") else "")
        + (f", multi-scale {protocol.get('scales')} + flip" if protocol.get("tta") else "") + ".", "",
    ]
    if not metrics:
        return lines + ["No evaluation was attached when this folder was published (`scrnet publish --eval`).", ""]
    dataset, split = str(metrics.get("dataset") or "unknown"), str(metrics.get("split") or "unknown")
    published = metrics.get("boundary_iou") if isinstance(metrics.get("boundary_iou"), dict) else {}
    width = metrics.get("boundary_width", cfg.eval.boundary_width)
    lines += [f"On {DATASET_NAMES.get(dataset, dataset)} `{split}` "
              f"({metrics.get('num_images', '?')} images): **mIoU {_pct(metrics['miou'])}%**, pixel accuracy "
              f"{_pct(metrics.get('aacc'))}%"
              + (f", Boundary IoU {_pct(published['mean'])}%" if published.get("mean") is not None else "")
              + (f", BIoU* {_pct(metrics['mbiou'])}%" if metrics.get("mbiou") is not None else "") + ".", "",
              f"Boundary IoU: Cheng et al. 2021 (dilation ratio {published.get('dilation_ratio', 'n/a')}); "
              f"BIoU*: scrnet's IoU in a fixed {width}-px band around the boundaries.", "",
              "| class | IoU (%) | Boundary IoU (%) | BIoU* (%) |", "|---|---|---|---|"]
    for cls, iou in metrics["iou"].items():
        row = [iou, (published.get("per_class") or {}).get(cls), (metrics.get("biou") or {}).get(cls)]
        lines.append(f"| {cls} | " + " | ".join("n/a" if v is None else str(_pct(v)) for v in row) + " |")
    return lines + [""]


def _compute_lines(result: PublishResult) -> list[str]:
    h, w = result.eval_size
    return [
        "## Size and compute", "",
        f"{result.num_params / 1e6:.2f} M parameters (eval network, auxiliary heads dropped); "
        f"{result.gmacs:.1f} GMACs (multiply-accumulates, the figure papers call GFLOPs) at {h}x{w}.", "",
        f"`{WEIGHTS_FILE}` sha256: `{result.sha256}`", "",
        "## Citation", "", "```bibtex", PAPER_BIBTEX, "", LIBRARY_BIBTEX, "```", "",
    ]


def write_card(path: Path, metadata: dict, body: str) -> None:
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    path.write_text(f"---\n{header}---\n\n{body}")


PUBLISHED_FILES = frozenset({WEIGHTS_FILE, CONFIG_FILE, CARD_FILE})
# keys of an eval JSON that describe the author's machine (paths, the full local config), not the model's figures
LOCAL_EVAL_KEYS = frozenset({"config", "model_source", "per_image_counts"})


def replaceable(out: Path) -> str | None:
    """Why ``out`` must not be replaced by ``publish --force`` (None: it is a published SCRNet folder holding only
    the files publish writes, or an empty folder). Reads ``config.json`` as data, and only its ``format``."""
    if out.is_symlink() or not out.is_dir():
        return "it is not a folder"
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return None
    others = [n for n in names if n not in PUBLISHED_FILES]
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        return f"it holds files scrnet publish does not write ({shown})"
    try:
        marker = json.loads((out / CONFIG_FILE).read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        marker = None
    if marker != "scrnet-pretrained":
        return f"its {CONFIG_FILE} is not that of a published SCRNet model"
    return None


def default_dir_mode(parent: Path) -> int:
    """The permissions a folder made in ``parent`` gets under the process's umask (read without changing it)."""
    probe = Path(tempfile.mkdtemp(dir=parent))
    try:
        (probe / "d").mkdir()
        return (probe / "d").stat().st_mode & 0o7777
    finally:
        shutil.rmtree(probe)


def publish(source: str | Path, out_dir: str | Path, eval_json: str | Path | None = None, name: str | None = None,
            license: str = "apache-2.0", force: bool = False) -> PublishResult:
    """Write the published folder of ``source`` (a checkpoint, or another published folder) to ``out_dir``.
    ``force`` replaces an existing published SCRNet folder; any other existing content is refused."""
    out = Path(out_dir)
    if out.exists() or out.is_symlink():
        if not force and (not out.is_dir() or any(out.iterdir())):
            raise CheckpointError(f"{out} exists and is not empty; choose another folder or pass --force to replace "
                                  f"a model published there")
        why = replaceable(out)
        if why:
            raise CheckpointError(f"{out} is not replaced: {why}; publish replaces only a folder it wrote. Choose "
                                  f"another folder (nothing was changed)")
    loaded = from_pretrained(source)
    if not list(loaded.model.parameters()):
        raise CheckpointError(f"{source}: publish needs weights (a checkpoint or a published folder), not an ONNX "
                              f"graph")
    metrics = read_eval_json(eval_json, loaded, source) if eval_json else None
    out.parent.mkdir(parents=True, exist_ok=True)
    mode = default_dir_mode(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(mode)  # mkdtemp's 0700 would make the published folder private
        result = _write_folder(tmp, out, loaded, metrics, name or out.resolve().name, license)
        from_pretrained(tmp)  # the folder must load before it takes the place of OUT_DIR
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _write_folder(folder: Path, out: Path, loaded: LoadedCheckpoint, metrics: dict | None, name: str,
                  license: str) -> PublishResult:
    """The three published files, in ``folder`` (they will be moved to ``out``)."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in loaded.model.state_dict().items()
             if not k.startswith("decoder.aux_heads.")}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "scrnet_version": __version__})
    size = eval_size(loaded.config)
    result = PublishResult(out, sha256_of(folder / WEIGHTS_FILE), loaded.model.num_params(),  # eval network's
                           compute_report(loaded.config.model, size).gmacs, size)
    config = folder_config(loaded, metrics, result)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    write_card(folder / CARD_FILE, card_metadata(loaded, metrics, name, license),
               card_body(loaded, metrics, name, result))
    return result


def folder_config(loaded: LoadedCheckpoint, metrics: dict | None, result: PublishResult) -> dict:
    """The published folder's ``config.json``: format, run config without local paths, classes, provenance,
    normalisation, eval protocol, weights, compute and the figures of the eval JSON (without its local keys)."""
    return {
        "format": "scrnet-pretrained", "format_version": FOLDER_FORMAT, "scrnet_version": __version__,
        "config": shareable_config(loaded.config), "class_names": loaded.class_names,
        "provenance": {"trained_iterations": loaded.trained_iterations},
        "palette": [list(c) for c in loaded.palette],
        "normalization": {"mean": list(loaded.normalization.mean), "std": list(loaded.normalization.std),
                          "input": "RGB in 0..1"},
        "eval_protocol": eval_protocol(loaded.config),
        "weights": {"file": WEIGHTS_FILE, "sha256": result.sha256, "num_params": result.num_params,
                    "auxiliary_heads": "dropped"},
        "compute": {"input": [1, 3, *result.eval_size], "gmacs": round(result.gmacs, 3)},
        "metrics": None if metrics is None else {k: v for k, v in metrics.items() if k not in LOCAL_EVAL_KEYS},
    }


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` (missing, empty, or a folder publish wrote: checked again, it may have changed while
    publishing) by ``tmp``."""
    if out.exists():
        why = replaceable(out)
        if why:
            raise CheckpointError(f"{out} is not replaced: {why}; nothing was changed")
        for name in PUBLISHED_FILES:
            (out / name).unlink(missing_ok=True)
        out.rmdir()
    tmp.rename(out)


class PushFailed(ScrnetError):
    """The Hub or the network refused an upload (a failed run: exit 1); the message names the repository."""


def push(folder: str | Path, repo_id: str, revision: str | None = None, private: bool = False,
         dry_run: bool = False, api=None) -> dict:
    """Upload a published folder to the Hub repository ``repo_id`` (created when missing). With ``dry_run``,
    only check and report what would be uploaded (no network)."""
    folder = Path(folder)
    check_repo_id(repo_id, "--push")
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    plan = {"repo_id": repo_id, "revision": revision, "files": files, "private": private}
    if dry_run:
        return plan
    if api is None:
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise RequestError("--push needs huggingface_hub (pip install 'scrnet[hub]')") from None
        api = HfApi()
    try:  # the Hub's HTTP errors and the network's are OSErrors (requests' RequestException)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision,
                                   commit_message=f"scrnet {__version__}: publish {folder.name}")
    except OSError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise PushFailed(f"could not upload {folder} to https://huggingface.co/{repo_id}: {first}; the folder is "
                         f"complete, push it again later or upload it with huggingface-cli") from None
    plan["commit"] = str(getattr(commit, "oid", commit))
    return plan
