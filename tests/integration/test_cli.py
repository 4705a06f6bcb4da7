"""The command line as a user runs it: exit codes, one-line errors, JSON that scripts can read. Most calls run
``scrnet.cli.main`` in this process (the console script's entry point, ``cli_helpers``); the help and
not-a-checkpoint tests start ``python -m scrnet`` as a subprocess, so the entry point itself is covered."""

import json
import subprocess
import sys

import pytest
from cli_helpers import run_like_subprocess

import scrnet


def run(*args):
    return run_like_subprocess(*args)


def run_process(*args):
    return subprocess.run([sys.executable, "-m", "scrnet", *args], capture_output=True, text=True, timeout=300)


def test_models_lists_every_variant_with_params_and_gmacs(tmp_path):
    out = tmp_path / "models.json"
    result = run("models", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["models"]
    assert [r["model"] for r in rows] == scrnet.list_models()
    for r in rows:
        assert r["input"] == [1, 3, 1024, 2048] and r["gmacs"] > 10 and r["params_m"] > 1
        assert r["model"] in result.stdout


def test_flops_json_has_the_documented_fields():
    result = run("flops", "scrnet_r18", "--size", "256", "512", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"model", "input", "gmacs", "params_m", "ops"} <= set(report)
    assert report["input"] == [1, 3, 256, 512] and report["model"] == "scrnet_r18"
    assert abs(sum(report["ops"].values()) - report["gmacs"]) < 1e-6
    assert "grid_sampler_2d" in report["ops"] and "upsample_bilinear2d" in report["ops"]


def test_flops_table_and_ablation_overrides():
    table = run("flops", "scrnet_r18", "srm.mode=bilinear", "--size", "128", "256")
    assert table.returncode == 0, table.stderr
    assert "convolution" in table.stdout and "backbone" in table.stdout and "grid_sampler" not in table.stdout


def test_flops_reads_the_model_section_of_a_config(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model:\n  name: fpn_r18\n  channels: 64\n")
    result = run("flops", str(cfg), "--size", "128", "128", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "fpn_r18"
    # one reader for config files: a format-1 file, which scrnet train upgrades, is upgraded here too
    old = tmp_path / "old.yaml"
    old.write_text("model:\n  name: fpn_r18\n  channels: 64\n  aux_weight: 0.2\n")
    upgraded = run_process("flops", str(old), "--size", "128", "128", "--json")  # the warning, as printed
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["gmacs"] == json.loads(result.stdout)["gmacs"]
    assert "model.aux_weight is now train.loss.aux_weight" in upgraded.stderr


@pytest.mark.parametrize("args,message", [
    (["flops", "scrnet_r34"], "unknown model 'scrnet_r34'; expected one of"),
    (["flops", "scrnet_r18", "srm.mode=diagonal"], "model.srm.mode must be one of"),
    (["flops", "missing.yaml"], "config file not found: missing.yaml"),
    (["flops", "scrnet_r18", "--size", "0", "64"], "--size must be two positive integers"),
])
def test_bad_usage_is_one_line_with_exit_code_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["models", "flops"])
def test_help_has_examples(command):
    result = run(command, "--help")
    assert result.returncode == 0 and "examples:" in result.stdout


@pytest.mark.parametrize("command", [["eval"], ["predict", "x.png"], ["export", "--onnx", "out.onnx"]])
@pytest.mark.parametrize("content", [b"not a checkpoint at all\n", b""])
def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, command, content):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    (tmp_path / "x.png").write_bytes(b"")
    if command[0] == "eval" and content:  # once through the console entry point, in a subprocess
        result = subprocess.run([sys.executable, "-m", "scrnet", command[0], str(path), *command[1:]],
                                capture_output=True, text=True, cwd=tmp_path)
    else:
        result = run(command[0], path, *(a if a.startswith("-") else tmp_path / a for a in command[1:]))
    assert result.returncode == 2 and str(path) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
