"""The training loop: one process or DDP under torchrun, exact resume, best / last checkpoints.

Run directory (written by rank 0 only): ``config.yaml`` (resolved), ``best.pt`` (best value of
``cfg.monitor`` on the validation subset), ``last.pt`` (plus optimiser, schedule, scaler, epoch,
best-so-far and RNG states), ``metrics.jsonl`` (one line per epoch), ``metrics.csv`` (the same as a
table, :class:`~kanseg.engine.callbacks.MetricsCSV`), ``log.txt`` and, once the last epoch is done,
``summary.json`` (the best checkpoint evaluated on the validation subset, per case and aggregated,
HD95 included; also when early stopping ended the run).

The loop is made of steps sharing a :class:`TrainState`: :func:`_set_up`, then per epoch
:func:`_run_epoch` (seeding, :func:`_train_epoch`, schedule), :func:`_validate` when due,
:func:`_save_checkpoints`, then :func:`_finish`. Between the steps it calls the hook points of
:mod:`kanseg.engine.callbacks`, where training features plug in without editing the loop.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from kanseg.checkpoint import load_checkpoint, load_weights, save_checkpoint
from kanseg.config import TrainConfig, save_config
from kanseg.engine import setup
from kanseg.engine.callbacks import Callback, CallbackList, default_callbacks
from kanseg.engine.distributed import (
    DistributedContext, all_gather_objects, all_reduce_sum, barrier, broadcast_buffers, broadcast_object,
    init_distributed, shutdown,
)
from kanseg.engine.evaluate import autocast, evaluate_dataset
from kanseg.engine.finetune import prepare_finetuning
from kanseg.engine.optim import accumulation_group
from kanseg.engine.resources import peak_memory, reset_peak_memory
from kanseg.engine.runlog import RunLog, read_json, read_jsonl, write_json
from kanseg.engine.seeding import epoch_seed, rng_state, seed_everything, set_rng_state
from kanseg.errors import Interrupted, KansegError
from kanseg.metrics import MONITORS, format_report, monitor_value


@dataclass
class TrainResult:
    """What :func:`train` leaves behind (``summary`` is empty when stopped before the last epoch)."""

    run_dir: Path
    best_epoch: int
    best_value: float
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainState:
    """What the training steps share and callbacks read: built by :func:`_set_up`, updated in place by the steps.

    ``epoch`` is the 0-based index of the running epoch; ``record`` is its ``metrics.jsonl`` line
    (``epoch``, ``train_loss``, ``lr`` per group, ``val`` when validated, ``time_s``, ``best``).
    ``eval_model`` is what validation scores and ``best.pt`` stores (the model, or a callback's EMA of it);
    ``stop_reason`` set by a callback ends the run after the epoch; ``callback_states`` is what ``last.pt``
    kept of the callbacks (resumed runs).
    """

    cfg: TrainConfig
    ctx: DistributedContext
    run_dir: Path
    log: RunLog
    model: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    train_ds: Any
    val_ds: Any
    sampler: DistributedSampler
    loader: DataLoader
    eval_kwargs: dict[str, Any]
    checkpoint_info: dict[str, Any]  # model description stored in every checkpoint
    n_params: int
    note: str | None
    resumed: bool
    start_epoch: int
    end_epoch: int
    eval_model: nn.Module
    callback_states: dict[str, Any] = field(default_factory=dict)
    best_epoch: int = 0
    best_value: float = -math.inf
    epoch: int = 0
    batch: int = 0
    batch_loss: float = math.nan
    stepped: bool = False
    improved: bool = False
    stop_reason: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    result: TrainResult | None = None
    memory_reset: bool = False  # the peak-memory window starts at this call (see kanseg.engine.resources)


def weights_digest(model: nn.Module) -> str:
    """SHA-1 of every parameter and buffer (name order): equal digests = bit-identical weights."""
    sha = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def _flat_scores(report: dict[str, Any]) -> dict[str, float]:
    return {name: monitor_value(report, name) for name in MONITORS if name[:4] != "ukan" or "ukan_compat" in report}


def _prepare_run_dir(cfg: TrainConfig, resume: Path | None, ctx: DistributedContext) -> Path:
    """The run directory (``cfg.out`` is resolved by :func:`train`). A resumed run and a folder left by a
    start that stopped before its first checkpoint are cleaned of stale temporary files first."""
    from kanseg.atomic import remove_stale_temps

    if resume is not None:
        if not (resume / "last.pt").is_file():
            raise KansegError(f"cannot resume: {resume / 'last.pt'} not found")
        if ctx.is_main:
            remove_stale_temps(resume)
        return resume
    run_dir = Path(cfg.out)
    if setup.check_new_run_dir(run_dir) and ctx.is_main:
        setup.take_over_run_dir(run_dir)
        RunLog(run_dir).info(f"note: {run_dir} held a run that stopped before its first checkpoint; starting again")
    elif ctx.is_main:
        remove_stale_temps(run_dir)
    return run_dir


def _restore(path: Path, cfg: TrainConfig, model, optimizer, scheduler, scaler) -> tuple[int, int, float, dict]:
    """Load ``last.pt`` into the training objects; returns (epochs done, best epoch, best value, callback states)."""
    state = load_checkpoint(path)
    if state.get("stopped"):
        raise KansegError(f"{path.parent} stopped early after epoch {state['epoch']} ({state['stopped']}); "
                          "the run is finished")
    if state["model"]["name"] != cfg.model.name:
        raise KansegError(f"{path} holds model {state['model']['name']!r}, its config says {cfg.model.name!r}")
    load_weights(model, state["state_dict"], cfg.model.name, path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if hasattr(scheduler, "T_max"):
        scheduler.T_max = cfg.epochs  # --epochs may extend a run
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    done = int(state["epoch"])
    summary = path.parent / "summary.json"
    finished = summary.is_file() and "run" in read_json(summary)  # else: stopped in the final evaluation
    if done >= cfg.epochs and finished:
        raise KansegError(f"{path.parent} already finished {done} epochs; pass --epochs > {done} to extend it")
    return done, int(state["best_epoch"]), float(state["best_value"]), state.get("callbacks", {})


def train(cfg: TrainConfig, *, resume: str | Path | None = None, stop_after: int | None = None) -> TrainResult:
    """Train ``cfg`` (a new run in ``cfg.out``, or continue ``resume``, a run directory).

    Args:
        cfg: resolved config (for a resumed run: the run's ``config.yaml``, ``epochs`` may be raised).
        resume: run directory whose ``last.pt`` to continue from; the run ends where an
            uninterrupted one would (same weights, same metrics).
        stop_after: leave after this many epochs of this call (time-boxed jobs; continue with ``resume``).
    """
    ctx = init_distributed(cfg.device)
    resume = Path(resume) if resume is not None else None
    if resume is not None and not (resume / "last.pt").is_file() and (resume / "config.yaml").is_file():
        # stopped before its first checkpoint: start again from epoch 0 with its saved config
        cfg, resume = cfg.model_copy(update={"out": str(resume)}), None
    if resume is None and cfg.out is None:  # one name on every rank (the default name holds the time)
        cfg = cfg.model_copy(update={"out": broadcast_object(ctx, str(setup.default_run_dir(cfg)))})
    run_dir = resume if resume is not None else Path(cfg.out)
    try:
        return _train(cfg, resume, stop_after, ctx)
    except KeyboardInterrupt:
        raise _interrupted(run_dir, cfg, ctx) from None
    finally:
        shutdown(ctx)


def _interrupted(run_dir: Path, cfg: TrainConfig, ctx: DistributedContext) -> Interrupted:
    """Ctrl-C: where training stopped and how to continue, also appended to ``log.txt`` (main process)."""
    if not ctx.is_main:
        return Interrupted("")
    if not (run_dir / "config.yaml").is_file():
        return Interrupted(f"training interrupted (Ctrl-C) before it started; nothing was written to {run_dir}")
    done = setup.last_epoch(run_dir)
    if done is None:
        where = (f"stopped during epoch 1/{cfg.epochs}, before the first checkpoint; start it again with: "
                 f"kanseg train --resume {run_dir}")
    elif done >= cfg.epochs:
        where = (f"stopped after all {done} epochs, during the final evaluation; finish it with: "
                 f"kanseg train --resume {run_dir}")
    else:
        where = (f"stopped during epoch {done + 1}/{cfg.epochs}; {run_dir / 'last.pt'} holds epoch {done}; "
                 f"continue with: kanseg train --resume {run_dir}")
    message = f"training interrupted (Ctrl-C): {where}"
    with open(run_dir / "log.txt", "a") as handle:
        handle.write(f"interrupted: {message}\n")
    return Interrupted(message)


def _train(cfg: TrainConfig, resume: Path | None, stop_after: int | None, ctx: DistributedContext,
           callbacks: Sequence[Callback] = ()) -> TrainResult:
    """The loop: set-up, then per epoch train -> validate (when due) -> checkpoint, then the final step; at the
    hook points it calls :func:`~kanseg.engine.callbacks.default_callbacks`, then ``callbacks``."""
    hooks = CallbackList([*default_callbacks(cfg), *callbacks])
    reset_ok = reset_peak_memory(ctx.device)
    state = _set_up(cfg, resume, stop_after, ctx)
    state.memory_reset = reset_ok
    hooks.load_state_dict(state.callback_states)
    hooks.on_fit_start(state)
    epochs = state.log.bar(range(state.start_epoch, state.end_epoch), total=state.end_epoch - state.start_epoch,
                           desc="training", leave=True)
    for epoch in epochs:
        started = time.perf_counter()
        state.epoch = epoch
        hooks.on_epoch_start(state)
        _run_epoch(state, hooks)
        if _validation_due(cfg, epoch):
            _validate(state)
            hooks.on_validation_end(state)
        state.record["time_s"] = round(time.perf_counter() - started, 3)
        state.record["best"] = state.improved
        state.history.append(state.record)
        _save_checkpoints(state, hooks)
        hooks.on_checkpoint(state)
        _report_epoch(state, epochs)
        hooks.on_epoch_end(state)
        barrier(ctx)
        if state.stop_reason:
            state.log.info(f"early stop after epoch {epoch + 1}: {state.stop_reason}")
            break
    state.result = _finish(state)
    hooks.on_fit_end(state)
    return state.result


def _set_up(cfg: TrainConfig, resume: Path | None, stop_after: int | None, ctx: DistributedContext) -> TrainState:
    """Set-up step: run directory, data, model, optimiser (restored from ``last.pt`` when resuming), loader."""
    run_dir = _prepare_run_dir(cfg, resume, ctx)  # nothing is written until everything below is valid
    setup.check_compile(cfg, ctx.device, ctx.enabled)

    # datasets: rank 0 first (it may generate or cache data), then the others
    if not ctx.is_main:
        barrier(ctx)
    data = setup.build_datasets(cfg)
    if ctx.is_main:
        barrier(ctx)
    train_ds, val_ds = data["train"], data["val"]
    seed_everything(cfg.seed)
    kwargs = setup.model_kwargs(cfg, train_ds)
    model = setup.make_model(cfg, kwargs)
    peft = prepare_finetuning(cfg, model, kwargs, resumed=resume is not None)  # init_from, PEFT wrap
    model = model.to(ctx.device)
    loss_fn, optimizer, scheduler, scaler = setup.build_training(cfg, model, ctx.device, kwargs["out_channels"])

    start_epoch, best_epoch, best_value, callback_states = 0, 0, -math.inf, {}
    if resume is not None:
        start_epoch, best_epoch, best_value, callback_states = _restore(run_dir / "last.pt", cfg, model, optimizer,
                                                                        scheduler, scaler)
    log = RunLog(run_dir, enabled=ctx.is_main)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        if resume is not None:
            log.truncate_epochs(start_epoch)
    note = setup.protocol_note(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(f"{'resuming' if resume else 'training'} {cfg.model.name} ({n_params / 1e6:.2f} M params) on "
             f"{cfg.data.dataset}: {len(train_ds)} train / {len(val_ds)} {cfg.data.val_subset} cases, "
             f"{ctx.world_size} process(es) on {ctx.device}, run dir {run_dir}")
    if note:
        log.info(f"note: {note}")
    if peft or cfg.freeze:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        what = f"PEFT {peft}" if peft else f"frozen {', '.join(cfg.freeze)}"
        log.info(f"{what} from {cfg.init_from or 'random weights'}: {trainable / 1e6:.3f} M trainable, "
                 f"{(n_params - trainable) / 1e6:.3f} M frozen parameters")

    net = DistributedDataParallel(model) if ctx.enabled else model
    if cfg.compile:
        net = torch.compile(net)  # traced at the first step; validation and checkpoints use ``model`` itself
        log.info("compile: the first training step compiles the model (about a minute on 2 CPU cores)")
    sampler = DistributedSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
                        drop_last=len(sampler) > cfg.batch_size, pin_memory=ctx.device.type == "cuda")
    info = dict(model_name=cfg.model.name, model_kwargs=kwargs, preprocessing=train_ds.preprocessing)
    if peft:
        info["peft"] = peft
    if cfg.data.patch_size:  # 3D patch training: predict uses the same window by default
        info["patch_size"] = [int(s) for s in cfg.data.patch_size]
    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    return TrainState(cfg=cfg, ctx=ctx, run_dir=run_dir, log=log, model=model, net=net, loss_fn=loss_fn,
                      optimizer=optimizer, scheduler=scheduler, scaler=scaler, train_ds=train_ds, val_ds=val_ds,
                      sampler=sampler, loader=loader, eval_kwargs=setup.eval_options(cfg, val_ds),
                      checkpoint_info=info, n_params=n_params, note=note, resumed=resume is not None,
                      start_epoch=start_epoch, end_epoch=end_epoch, best_epoch=best_epoch, best_value=best_value,
                      eval_model=model, callback_states=callback_states)


def _train_epoch(state: TrainState, hooks: Callback) -> float:
    """Epoch step: one pass over this rank's shard; returns the sample-weighted mean loss over all ranks.

    With ``optim.accumulate`` = N the gradients of N batches (fewer in the last group) are summed, each loss
    divided by its group's size, before one optimiser step (DDP synchronises only the group's last backward)."""
    cfg, ctx, net, optimizer, scaler = state.cfg, state.ctx, state.net, state.optimizer, state.scaler
    net.train()
    total = torch.zeros(2, dtype=torch.float64)  # loss sum, samples
    bar = state.log.bar(state.loader, total=len(state.loader), desc=f"epoch {state.epoch + 1}/{cfg.epochs}")
    for index, batch in enumerate(bar):
        group, steps = accumulation_group(index, len(state.loader), cfg.optim.accumulate)
        images = batch["image"].to(ctx.device, non_blocking=True)
        labels = batch["label"].to(ctx.device, non_blocking=True)
        if index % cfg.optim.accumulate == 0:
            optimizer.zero_grad(set_to_none=True)
        with net.no_sync() if ctx.enabled and not steps else nullcontext():
            with autocast(ctx.device, cfg.amp):
                outputs = net(images)
            loss = state.loss_fn(outputs, labels)
            if not torch.isfinite(loss):
                raise KansegError(f"training diverged: loss is {loss.item()} at epoch {state.epoch + 1}; "
                                  "lower optim.lr / optim.kan_lr or set --amp off")
            scaler.scale(loss / group if group > 1 else loss).backward()
        if steps:
            if cfg.optim.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        state.batch, state.batch_loss, state.stepped = index, loss.item(), steps
        total += torch.tensor([state.batch_loss * len(images), len(images)], dtype=torch.float64)
        bar.set_postfix(loss=f"{total[0] / total[1]:.4f}")
        hooks.on_train_batch_end(state)
    total = all_reduce_sum(ctx, total).cpu()
    return float(total[0] / max(total[1], 1))


def _run_epoch(state: TrainState, hooks: Callback) -> None:
    """Seed the epoch, train it, step the schedule; starts ``state.record``."""
    ctx, optimizer = state.ctx, state.optimizer
    seed_everything(epoch_seed(state.cfg.seed, state.epoch, ctx.rank))
    state.sampler.set_epoch(state.epoch)
    if hasattr(state.train_ds, "set_epoch"):
        state.train_ds.set_epoch(state.epoch)
    lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
    train_loss = _train_epoch(state, hooks)
    broadcast_buffers(ctx, state.model)  # e.g. BatchNorm running stats: each rank updated its own
    state.scheduler.step()
    state.record = {"epoch": state.epoch + 1, "train_loss": train_loss, "lr": lrs}
    state.improved = False
    hooks.on_train_epoch_end(state)


def _validation_due(cfg: TrainConfig, epoch: int) -> bool:
    return (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs


def _validate(state: TrainState) -> None:
    """Validation step: score the validation subset; track the best value of ``cfg.monitor``."""
    _, report = evaluate_dataset(state.eval_model, state.val_ds, state.ctx, with_hd95=False, log=state.log,
                                 **state.eval_kwargs)
    state.record["val"] = _flat_scores(report)
    value = state.record["val"][state.cfg.monitor]
    state.improved = value > state.best_value
    if state.improved:
        state.best_epoch, state.best_value = state.epoch + 1, value


def _save_checkpoints(state: TrainState, hooks: CallbackList) -> None:
    """Checkpoint step (main rank): the epoch's ``metrics.jsonl`` line, ``best.pt`` (the validated weights) when
    improved, ``last.pt`` (with the callbacks' states and why the run stopped early, if it did)."""
    if not state.ctx.is_main:
        return
    run_dir, record, info, epoch = state.run_dir, state.record, state.checkpoint_info, state.epoch + 1
    state.log.log_epoch(record)
    if state.improved:
        save_checkpoint(run_dir / "best.pt", **info, state_dict=state.eval_model.state_dict(), epoch=epoch,
                        metrics=record["val"], monitor=state.cfg.monitor)
    save_checkpoint(run_dir / "last.pt", **info, state_dict=state.model.state_dict(), epoch=epoch,
                    best_epoch=state.best_epoch, best_value=state.best_value, optimizer=state.optimizer.state_dict(),
                    scheduler=state.scheduler.state_dict(), scaler=state.scaler.state_dict(), rng=rng_state(),
                    callbacks=hooks.state_dict(), stopped=state.stop_reason)


def _report_epoch(state: TrainState, bar) -> None:
    """The epoch's progress-bar postfix and log line."""
    record, cfg = state.record, state.cfg
    val = record.get("val")
    bar.set_postfix(loss=f"{record['train_loss']:.4f}", **({"val_dice": f"{val['dice']:.4f}"} if val else {}))
    val_text = f" val dice {val['dice']:.4f} iou {val['iou']:.4f}{' *' if state.improved else ''}" if val else ""
    state.log.info(f"epoch {record['epoch']}/{cfg.epochs} loss {record['train_loss']:.4f}{val_text} "
                   f"({record['time_s']:.1f} s)")


def _cost(state: TrainState) -> dict[str, Any]:
    """What the run cost: trainable parameters, training time (all epochs, resumed ones included, validation
    included), seconds per epoch, training batches per epoch, and the peak memory of this call's process (``rss_scope``: ``run``, or
    ``process`` where the peak could not be reset)."""
    times = [float(r["time_s"]) for r in read_jsonl(state.run_dir / "metrics.jsonl") if "time_s" in r] \
        if state.ctx.is_main and (state.run_dir / "metrics.jsonl").is_file() else []
    cost: dict[str, Any] = {"train_time_s": round(sum(times), 2),
                            "s_per_epoch": round(sum(times) / len(times), 2) if times else None}
    cost.update(peak_memory(state.ctx.device, since_reset=state.memory_reset))
    cost["train_batches"] = len(state.loader)  # per epoch and process (kanseg benchmark --match-time uses it)
    cost["trainable_params"] = sum(p.numel() for p in state.model.parameters() if p.requires_grad)
    return cost


def _finish(state: TrainState) -> TrainResult:
    """Final step: the best checkpoint evaluated on the validation subset, ``summary.json`` (last epoch only)."""
    cfg, ctx, log, model = state.cfg, state.ctx, state.log, state.model
    digests = all_gather_objects(ctx, weights_digest(model))
    result = TrainResult(state.run_dir, state.best_epoch, state.best_value, state.history)
    if state.end_epoch < cfg.epochs and state.stop_reason is None:
        log.info(f"stopped after epoch {state.end_epoch}; continue with: kanseg train --resume {state.run_dir}")
        return result

    run_dir = state.run_dir
    best_state = broadcast_object(ctx, load_checkpoint(run_dir / "best.pt")["state_dict"] if ctx.is_main else None)
    model.load_state_dict(best_state)
    rows, report = evaluate_dataset(model, state.val_ds, ctx, with_hd95=True, log=log, **state.eval_kwargs)
    result.summary = {
        "run": {"model": cfg.model.name, "params": state.n_params, "dataset": cfg.data.dataset,
                "split": cfg.data.split, "epochs": cfg.epochs, "best_epoch": state.best_epoch, "monitor": cfg.monitor,
                "best_value": state.best_value, "world_size": ctx.world_size, "weights_sha1_per_rank": digests,
                "protocol_note": state.note,
                "stopped_early": {"epoch": state.epoch + 1, "reason": state.stop_reason} if state.stop_reason else None,
                **_cost(state)},
        cfg.data.val_subset: {"checkpoint": "best.pt", "epoch": state.best_epoch, "report": report, "cases": rows},
    }
    if ctx.is_main:
        write_json(run_dir / "summary.json", result.summary)
        log.info(format_report(report, f"best.pt (epoch {state.best_epoch}) on {cfg.data.val_subset}:"))
        log.info(f"run directory: {run_dir}")
    return result
