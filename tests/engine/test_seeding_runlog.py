"""RNG states survive a weights_only checkpoint; run-log files are written as promised."""

import json
import random

import numpy as np
import torch

from kanseg.engine.runlog import RunLog, read_jsonl, write_json
from kanseg.engine.seeding import epoch_seed, rng_state, seed_everything, set_rng_state


def _draw():
    return random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    seed_everything(123)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.randn()
    state = rng_state()
    expected = _draw()
    torch.save({"rng": state}, tmp_path / "s.pt")
    seed_everything(999)
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert _draw() == expected


def test_epoch_seed_depends_on_seed_epoch_and_rank():
    seeds = {epoch_seed(s, e, r) for s in (0, 1) for e in (0, 1) for r in (0, 1)}
    assert len(seeds) == 8 and all(0 <= s < 2**31 for s in seeds)
    assert epoch_seed(0, 3, 1) == epoch_seed(0, 3, 1)


def test_runlog_files(tmp_path, capsys):
    log = RunLog(tmp_path)
    log.info("hello")
    for epoch in (1, 2, 3):
        log.log_epoch({"epoch": epoch, "val": {"hd95": float("nan")}})
    log.truncate_epochs(2)
    assert [r["epoch"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    assert read_jsonl(tmp_path / "metrics.jsonl")[0]["val"]["hd95"] is None
    assert (tmp_path / "log.txt").read_text() == "hello\n" and capsys.readouterr().out == "hello\n"
    write_json(tmp_path / "s.json", {"x": [1.5, float("inf")]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": [1.5, None]}
    silent = RunLog(tmp_path / "other", enabled=False)  # a non-main rank
    silent.info("nothing")
    silent.log_epoch({"epoch": 1})
    assert not (tmp_path / "other").exists() and capsys.readouterr().out == ""
