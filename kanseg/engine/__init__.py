"""Training, evaluation and benchmarking.

    >>> from kanseg.config import load_config
    >>> from kanseg.engine import train, evaluate_run
    >>> result = train(load_config("configs/cpu-quick.yaml", {"data.data_root": "data/CVC-ClinicDB"}))
    >>> evaluate_run(result.run_dir, subset="test")["report"]["per_image"]["dice"]

Modules: ``trainer`` (the loop as steps, checkpoints, resume, DDP), ``callbacks`` (its hook points,
``metrics.csv``, early stopping), ``ema`` (EMA of the weights), ``tensorboard`` (event files), ``evaluate`` (native-resolution scoring,
sharded over ranks), ``benchmark`` (models x seeds table), ``setup`` (config -> datasets, model,
optimiser), ``losses``, ``optim``, ``distributed``, ``seeding``, ``runlog`` (console, log.txt,
metrics.jsonl).
"""

from kanseg.engine.benchmark import run_benchmark
from kanseg.engine.callbacks import Callback
from kanseg.engine.evaluate import evaluate_dataset, evaluate_run
from kanseg.engine.trainer import TrainResult, train

__all__ = ["Callback", "TrainResult", "evaluate_dataset", "evaluate_run", "run_benchmark", "train"]
