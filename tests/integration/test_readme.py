"""Every command shown in README.md and on the docs site's pages (docs/*.md) parses as the CLI parses it (default
run), and runs (slow marker): cheap ones for real (tiny sizes, fixtures in a temporary working folder), GPU,
multi-process and benchmark ones parsed only. Synopsis lines (with [options], placeholders, ...) are skipped. The
site itself builds with ``mkdocs build --strict`` (no broken link, no missing API reference) and its home page
renders in headless Chromium (slow)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_fixtures import make_ade20k, make_bdd100k, make_cityscapes

import scrnet
from scrnet.cli import build_parser
from scrnet.config import Config, DataConfig
from scrnet.data.cityscapes import CLASSES, PALETTE

ROOT = Path(__file__).parents[2]
TINY_TRAIN = ["train.max_iters=2", "train.batch_size=2", "train.num_workers=0", "train.val_interval=0",
              "train.checkpoint_interval=2", "train.log_interval=1", "model.backbone_weights=null",
              "model.channels=16", "data.train.crop_size=[64,64]", "data.train.scale=[128,64]",
              "train.tensorboard=false"]
PLACEHOLDER = re.compile(r"\[|\]|\.\.\.|\||\b(CONFIG|CHECKPOINT|MODEL|INPUT|OUT|DIR|YOUR_IMAGES|HOST0|N)\b")


DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """Commands in the bash blocks of the README and the docs pages, each once: continuation lines joined, comments
    dropped."""
    text = "\n".join(page.read_text() for page in DOC_PAGES)
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        variables: dict[str, str] = {}  # a block's shell variables (A=configs/ablations), expanded as a shell would
        for line in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            words = shlex.split(line) if line and not line.startswith("#") else []
            if words and all(re.fullmatch(r"[A-Z_]+=\S*", w) for w in words):
                variables.update(w.split("=", 1) for w in words)
                continue
            line = re.sub(r"\$([A-Z_]+)", lambda m: variables.get(m.group(1), m.group(0)), line)
            if line and not line.startswith("#") and line not in commands:
                commands.append(line)
    return commands


def scrnet_argv(command: str) -> list[str] | None:
    """The scrnet arguments of a command (also inside torchrun/srun), or None for other commands."""
    words = shlex.split(command.replace('"$head:29500"', "head:29500"))
    if words[0] == "scrnet":
        return words[1:]
    if "-m" in words and words[words.index("-m") + 1] == "scrnet":
        return words[words.index("-m") + 2:]
    return None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A working folder holding what the README's commands name: configs, data, checkpoints, images, a video."""
    ws = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "configs", ws / "configs")
    # the kept studies the pages compare, as git holds them: studies/.gitignore owns what stays out (the weights)
    kept_out = [line.rstrip("/") for line in (ROOT / "studies" / ".gitignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    shutil.copytree(ROOT / "studies", ws / "studies", ignore=shutil.ignore_patterns(*kept_out))
    (ws / "docs" / "ablations").mkdir(parents=True)  # where docs/ablations.md writes its tables
    for split in ("train", "val"):
        make_cityscapes(ws / "data" / "cityscapes", split, n=2, size=(64, 128))
    make_cityscapes(ws / "data" / "cityscapes", "test", n=1, size=(64, 128))
    for split in ("train", "val"):
        make_bdd100k(ws / "data" / "bdd100k", split, n=2, size=(64, 128))
    for split in ("training", "validation"):
        make_ade20k(ws / "data" / "ade", split, n=2, size=(64, 96))
    torch.manual_seed(0)
    model = scrnet.create_model("scrnet_r18", num_classes=19, channels=16)
    config = Config(model=model.cfg, data=DataConfig(type="cityscapes", root="data/cityscapes"))
    scrnet.save_checkpoint(model, ws / "best.pth", CLASSES, PALETTE, config)  # runs/r18 is the README's to train
    rgb = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    cv2.imwrite(str(ws / "street.jpg"), rgb)
    (ws / "photos").mkdir()
    cv2.imwrite(str(ws / "photos" / "p.png"), rgb)
    (ws / "more" / "deep").mkdir(parents=True)
    cv2.imwrite(str(ws / "more" / "deep" / "m.png"), rgb)
    writer = cv2.VideoWriter(str(ws / "drive.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (80, 48))
    for _ in range(3):
        writer.write(rgb)
    writer.release()
    (ws / "my_run.yaml").write_text("model:\n  name: scrnet_r18\n  channels: 64\n")
    return ws


def braces(word: str) -> list[str]:
    """``word`` with its ``{a,b}`` groups expanded in order, as bash's brace expansion does."""
    group = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if group is None:
        return [word]
    return [x for alt in group.group(1).split(",") for x in braces(word[:group.start()] + alt + word[group.end():])]


def adapt(argv: list[str], cwd: Path | None = None) -> list[str]:
    """The same command at a tiny scale: real data roots to the fixtures, sizes and budgets to the minimum; brace
    groups expanded, and glob patterns of study and compare expanded in ``cwd``, as a shell would."""
    argv = [re.sub(r"(^|=)/data/", r"\1data/", a).replace("/shared/", "") for a in argv]
    argv = [x for a in argv for x in braces(a)]
    command = argv[0]
    if command in ("study", "compare") and cwd is not None:
        argv = [x for a in argv for x in (sorted(str(p.relative_to(cwd)) for p in cwd.glob(a)) or [a]
                                          if "*" in a else [a])]
    if command == "study":
        argv += TINY_TRAIN
    if command in ("export", "benchmark") and "--size" in argv:
        i = argv.index("--size")
        argv[i + 1:i + 3] = ["64", "128"]
    if command == "benchmark":
        argv += ["--rounds", "1", "--warmup", "0"] + ([] if "--size" in argv else ["--size", "64", "64"])
    if command == "train":  # validated at its end, as a real run is: it writes the best.pth later commands use
        argv += TINY_TRAIN + ["train.val_interval=2"] + (["data.root=data/cityscapes"] if "cityscapes" in argv[1]
                                                         else [])
        if "synthetic" in argv[1]:
            argv += ["data.train.scale=[128,64]"]
    if command == "demo":
        argv += ["--quick"]
    if command == "eval" and "--tta" in argv and not any(a.startswith("eval.scales") for a in argv):
        argv += ["eval.scales=[0.75,1.0]"]
    return argv


def parses(argv: list[str]) -> bool:
    """Whether ``scrnet`` would accept ``argv``: as ``scrnet.cli.main`` parses, the only arguments left over may be
    ``key=value`` overrides of a command that takes them (a misspelt ``--flag`` is refused)."""
    try:
        args, extra = build_parser().parse_known_args(argv)
    except SystemExit as exc:
        return exc.code == 0
    return not extra or (hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra))


def test_the_parse_check_refuses_what_the_cli_refuses():
    assert parses(["eval", "best.pth", "--workers", "2", "eval.tta=true"])
    assert not parses(["eval", "best.pth", "--workerz", "2"])
    assert not parses(["benchmark", "scrnet_r18", "--sise", "64", "64"])
    assert not parses(["models", "srm.mode=pixel"])  # a command without overrides
    assert not parses(["predict"])


def test_every_readme_command_parses():
    checked = 0
    for command in readme_commands():
        argv = scrnet_argv(command)
        if argv is None or (PLACEHOLDER.search(" ".join(argv)) and not command.startswith(("torchrun", "srun"))):
            continue
        assert parses(argv), command
        checked += 1
    assert checked >= 24, checked


@pytest.mark.slow
def test_every_readme_command_runs(workspace):
    commands = readme_commands()
    ran, parsed, skipped = [], [], []
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    for command in commands:
        argv = scrnet_argv(command)
        if argv is None:
            if command.startswith("python benchmarks/"):  # slow by design: check the script and its options
                script = shlex.split(command)
                result = subprocess.run([sys.executable, str(ROOT / script[1]), "--help"], capture_output=True,
                                        text=True, timeout=120)
                assert result.returncode == 0, (command, result.stderr)
                parsed.append(command)
            else:
                skipped.append(command)
            continue
        if PLACEHOLDER.search(" ".join(argv)) and not command.startswith(("torchrun", "srun")):
            skipped.append(command)  # a synopsis line
            continue
        if command.startswith(("torchrun", "srun")) or "cuda" in argv:
            assert parses(argv), command
            parsed.append(command)
            continue
        # a study trains and scores every cell (25 for the SRM modes): about 10 minutes on 2 cores
        result = subprocess.run([sys.executable, "-m", "scrnet", *adapt(argv, workspace)], cwd=workspace,
                                capture_output=True, text=True, timeout=1800 if argv[0] == "study" else 600, env=env)
        assert result.returncode == 0, (command, adapt(argv, workspace), result.stdout[-1500:],
                                        result.stderr[-1500:])
        ran.append(command)
    assert len(ran) >= 20 and len(parsed) >= 4, (ran, parsed)
    shell = ("make", "python3 -m venv", ".venv/", "OMP_NUM_THREADS=1 .venv/", "#!", "head=")
    assert all(c.startswith(shell) or PLACEHOLDER.search(c)
               for c in skipped), [c for c in skipped if not PLACEHOLDER.search(c)]


def test_readme_python_blocks_run(workspace, monkeypatch):
    """The Python examples of the README and the docs pages run as written (in a folder holding the files they
    name)."""
    blocks = [block for page in DOC_PAGES for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]
    assert blocks
    # a block whose every line is in a longer block (the README's quick start is the getting-started page's, less a
    # line) runs as part of that one
    lines = [set(b.splitlines()) for b in blocks]
    blocks = [b for i, b in enumerate(blocks)
              if not any(j != i and lines[i] < lines[j] for j in range(len(blocks)))]
    from scrnet.hub.publish import publish

    folder = workspace / "hub" / "scrnet-r18-cityscapes"  # what the README's `scrnet publish` line writes
    if not folder.exists():
        publish(workspace / "best.pth", folder)
    monkeypatch.chdir(workspace)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_the_docs_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: every page in the nav exists, no link or anchor is broken, every API reference
    resolves to a docstring."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "export_checkpoint" in api and "float_island" in api and "CARAFE" in api
    # a list written right after a paragraph line (fine on GitHub) is swallowed into the paragraph by MkDocs
    swallowed = [page.relative_to(tmp_path) for page in (tmp_path / "site").rglob("index.html")
                 if re.search(r"<p>(?:(?!</p>).)*\n(?:- |\d+\. )", page.read_text(), flags=re.S)]
    assert not swallowed, f"a list needs a blank line before it: {swallowed}"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-headless-shell") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium (Debian)")
def test_the_docs_home_page_renders_in_headless_chromium(tmp_path):
    """The built home page, screenshotted as a person would see it: not blank, and its text is the page's."""
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    shot = tmp_path / "home.png"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900"]
    subprocess.run([*args, f"--screenshot={shot}", (site / "index.html").as_uri()], capture_output=True, timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (900, 1280)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert gray.std() > 10 and (gray < 128).mean() > 0.005  # text and a header, not a blank page
    dom = subprocess.run([*args, "--dump-dom", (site / "index.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "Semantic Refinement Module" in dom and "Where to start" in dom
    assert re.search(r"<li>\s*train on Cityscapes", dom)  # lists render as lists


def test_brace_groups_expand_as_bash_expands_them():
    assert braces("runs/{a,b}/seed1*") == ["runs/a/seed1*", "runs/b/seed1*"]
    assert braces("{x,y}-{1,2}") == ["x-1", "x-2", "y-1", "y-2"]
    assert braces("plain{}") == ["plain{}"] and braces("{one}") == ["{one}"]
