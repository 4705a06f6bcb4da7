"""The pages agree with the repository: every repository path that the README, the docs and the CLI's help quote
exists, every interval docs/ablations.md quotes is in a committed compare output (docs/ablations/, studies/), and
the README installs the extras the Makefile's test target installs."""

import argparse
import re
from pathlib import Path

from scrnet.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "configs" / "ablations" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a repository path: one of the top-level folders (or the package), then a path
PATH = re.compile(r"(?<![\w/.~-])((?:src|tests|benchmarks|configs|docs|studies|scrnet|\.ci)/[\w./*-]*[\w*])")
# quoted as the user's own files in examples, not the repository's
USER_FILES = {"configs/my_run.yaml"}


def help_texts() -> str:
    texts = []

    def walk(parser: argparse.ArgumentParser):
        texts.extend(filter(None, [parser.description, parser.epilog]))
        for action in parser._actions:
            texts.extend(filter(None, [action.help]))
            if isinstance(action, argparse._SubParsersAction):
                for choice in action.choices.values():
                    walk(choice)

    walk(build_parser())
    return "\n".join(texts)


def quoted_paths(text: str) -> set[str]:
    return {m.group(1) for m in PATH.finditer(text)}


def exists(path: str) -> bool:
    if "*" in path:
        return any(ROOT.glob(path)) or any((ROOT / "src").glob(path))
    return (ROOT / path).exists() or (ROOT / "src" / path).exists()


def test_every_quoted_repository_path_exists():
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in PAGES}
    sources["scrnet --help texts"] = help_texts()
    missing = {name: sorted(p for p in quoted_paths(text) - USER_FILES if not exists(p))
               for name, text in sources.items()}
    assert not {k: v for k, v in missing.items() if v}


def test_the_path_check_can_fail():
    assert quoted_paths("see `scrnet/tools/compare.py` and tests/unit/tools/x.py.") == {
        "scrnet/tools/compare.py", "tests/unit/tools/x.py"}
    assert not exists("scrnet/tools/compare.py") and exists("scrnet/experiments/compare.py")
    assert exists("configs/ablations/srm_mode/*.yaml")


INTERVAL = re.compile(r"[+-]\d+\.\d+ \[[+-]?\d+\.\d+, [+-]?\d+\.\d+\]")


def test_every_interval_in_the_ablations_page_is_in_a_committed_compare_output():
    page = (ROOT / "docs" / "ablations.md").read_text()
    written = [*sorted((ROOT / "docs" / "ablations").glob("*.md")), *sorted((ROOT / "studies").glob("**/*.md"))]
    outputs = "\n".join(p.read_text() for p in written)  # compare's Markdown, of the exploratory and kept studies
    quoted = INTERVAL.findall(page)
    assert len(quoted) > 20
    assert [q for q in quoted if q not in outputs] == []


def test_the_readme_installs_the_extras_the_tests_need():
    extras = re.search(r"^TEST_EXTRAS := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    for page in ("README.md", "docs/getting-started.md"):
        installs = re.findall(r'pip install -c constraints.txt -e "\.\[([^\]]*)\]"', (ROOT / page).read_text())
        assert installs == [extras], page


CLAIM = re.compile(r"<!-- claim: begin -->\n(.*?)\n<!-- claim: end -->", re.S)


def test_the_readme_quotes_the_claim_the_ablations_page_owns():
    owner = CLAIM.findall((ROOT / "docs" / "ablations.md").read_text())
    readme = CLAIM.findall((ROOT / "README.md").read_text())
    assert len(owner) == 1 and readme == owner
