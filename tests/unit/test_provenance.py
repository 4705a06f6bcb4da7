"""What a run ran on: the environment record and the source checkout it names (or does not)."""

import subprocess
from pathlib import Path

import pytest
import torch

import scrnet
from scrnet import provenance


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    if subprocess.run(["git", "--version"], capture_output=True).returncode:
        pytest.skip("no git")
    git(tmp_path, "init", "-q")
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (tmp_path / "README").write_text("x\n")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path, package


def test_the_environment_names_versions_threads_and_device(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    env = provenance.environment(torch.device("cpu"))
    assert env["scrnet"] == scrnet.__version__ and env["torch"] == torch.__version__
    assert env["threads"] == torch.get_num_threads() and env["omp_num_threads"] == "1"
    assert env["device"] == "cpu" and "device_name" not in env


def test_a_package_tracked_in_a_git_checkout_names_its_commit_and_local_edits(repo, monkeypatch):
    root, package = repo
    (package / "__init__.py").write_text("")
    git(root, "add", "src")
    git(root, "commit", "-q", "-m", "package")
    monkeypatch.setattr(provenance, "SOURCE", package)
    assert provenance.source_commit() == {"commit": git(root, "rev-parse", "HEAD"), "modified": False}
    (package / "__init__.py").write_text("x = 1\n")
    assert provenance.source_commit()["modified"] is True
    (root / "README").write_text("edited outside src/\n")
    git(root, "checkout", "-q", "--", "src")
    assert provenance.source_commit()["modified"] is False  # only the package's source counts


def test_an_untracked_package_inside_someone_elses_repo_names_no_commit(repo, monkeypatch):
    """A wheel installed into a virtual environment that lies in the user's own git repo: that repo's commit says
    nothing about scrnet's code."""
    _, package = repo
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(provenance, "SOURCE", package)
    assert provenance.source_commit() is None


def test_outside_any_checkout_there_is_no_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "SOURCE", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.source_commit() is None
