"""The training log's reader keeps the history as trained: a resume's marker replaces the cut-short attempt's lines
after the checkpoint, and nothing is removed from the file."""

import json

import pytest

from scrnet.engine.training_log import TrainingLogError, append, mark_resume, read_log


def write(path, *records):
    for r in records:
        append(path, r)


def test_a_log_without_resumes_reads_as_written(tmp_path):
    log = tmp_path / "metrics.jsonl"
    write(log, {"iter": 10, "loss": 1.0}, {"iter": 10, "val_miou": 0.5}, {"iter": 20, "loss": 0.5})
    assert read_log(log) == [{"iter": 10, "loss": 1.0}, {"iter": 10, "val_miou": 0.5}, {"iter": 20, "loss": 0.5}]


def test_a_resume_replaces_the_lines_after_its_checkpoint_and_keeps_those_before(tmp_path):
    log = tmp_path / "metrics.jsonl"
    write(log, {"iter": 10, "loss": 1.0}, {"iter": 20, "loss": 0.8}, {"iter": 20, "val_miou": 0.4},
          {"iter": 30, "loss": 0.7})  # cut short at 35; the checkpoint is at 20
    mark_resume(log, 20)
    write(log, {"iter": 30, "loss": 0.6}, {"iter": 40, "loss": 0.5})
    assert read_log(log) == [{"iter": 10, "loss": 1.0}, {"iter": 20, "loss": 0.8}, {"iter": 20, "val_miou": 0.4},
                             {"iter": 30, "loss": 0.6}, {"iter": 40, "loss": 0.5}]
    assert len(log.read_text().splitlines()) == 7  # nothing deleted from the file


def test_a_resume_from_no_checkpoint_replaces_every_earlier_line_and_resumes_chain(tmp_path):
    log = tmp_path / "metrics.jsonl"
    write(log, {"iter": 10, "loss": 1.0}, {"iter": 20, "loss": 0.9})
    mark_resume(log, 0)  # no checkpoint was written before the stop: training starts again from 0
    write(log, {"iter": 10, "loss": 0.7}, {"iter": 20, "loss": 0.6}, {"iter": 30, "loss": 0.5})
    mark_resume(log, 20)
    write(log, {"iter": 30, "loss": 0.4})
    assert [(r["iter"], r["loss"]) for r in read_log(log)] == [(10, 0.7), (20, 0.6), (30, 0.4)]


@pytest.mark.parametrize("line", ['{"iter": 10, "lo', "[1, 2]"])
def test_a_bad_line_is_an_error_naming_the_file_and_line(tmp_path, line):
    log = tmp_path / "metrics.jsonl"
    log.write_text(json.dumps({"iter": 5, "loss": 1.0}) + "\n" + line + "\n")
    with pytest.raises(TrainingLogError, match=r"metrics\.jsonl:2: not a JSON"):
        read_log(log)
