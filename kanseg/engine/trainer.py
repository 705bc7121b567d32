"""The training loop: one process or DDP under torchrun, exact resume, best / last checkpoints.

Run directory (written by rank 0 only): ``config.yaml`` (resolved), ``best.pt`` (best value of
``cfg.monitor`` on the validation subset), ``last.pt`` (plus optimiser, schedule, scaler, epoch,
best-so-far and RNG states), ``metrics.jsonl`` (one line per epoch), ``log.txt`` and, once the
last epoch is done, ``summary.json`` (the best checkpoint evaluated on the validation subset,
per case and aggregated, HD95 included).
"""

from __future__ import annotations

import hashlib
import math
import time
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
from kanseg.engine.distributed import (
    DistributedContext, all_gather_objects, all_reduce_sum, barrier, broadcast_buffers, broadcast_object,
    init_distributed, shutdown,
)
from kanseg.engine.evaluate import autocast, evaluate_dataset
from kanseg.engine.runlog import RunLog, read_json, write_json
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


def weights_digest(model: nn.Module) -> str:
    """SHA-1 of every parameter and buffer (name order): equal digests = bit-identical weights."""
    sha = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def _flat_scores(report: dict[str, Any]) -> dict[str, float]:
    return {name: monitor_value(report, name) for name in MONITORS if name[:4] != "ukan" or "ukan_compat" in report}


def _train_epoch(net, loader, loss_fn, optimizer, scaler, cfg: TrainConfig, ctx: DistributedContext,
                 log: RunLog, epoch: int) -> float:
    """One pass over this rank's shard; returns the sample-weighted mean loss over all ranks."""
    net.train()
    total = torch.zeros(2, dtype=torch.float64)  # loss sum, samples
    bar = log.bar(loader, total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}")
    for batch in bar:
        images = batch["image"].to(ctx.device, non_blocking=True)
        labels = batch["label"].to(ctx.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with autocast(ctx.device, cfg.amp):
            outputs = net(images)
        loss = loss_fn(outputs, labels)
        if not torch.isfinite(loss):
            raise KansegError(f"training diverged: loss is {loss.item()} at epoch {epoch + 1}; "
                              "lower optim.lr / optim.kan_lr or set --amp off")
        scaler.scale(loss).backward()
        if cfg.optim.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        total += torch.tensor([loss.item() * len(images), len(images)], dtype=torch.float64)
        bar.set_postfix(loss=f"{total[0] / total[1]:.4f}")
    total = all_reduce_sum(ctx, total).cpu()
    return float(total[0] / max(total[1], 1))


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


def _restore(path: Path, cfg: TrainConfig, model, optimizer, scheduler, scaler) -> tuple[int, int, float]:
    """Load ``last.pt`` into the training objects; returns (epochs done, best epoch, best value)."""
    state = load_checkpoint(path)
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
    return done, int(state["best_epoch"]), float(state["best_value"])


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


def _train(cfg: TrainConfig, resume: Path | None, stop_after: int | None, ctx: DistributedContext) -> TrainResult:
    run_dir = _prepare_run_dir(cfg, resume, ctx)  # nothing is written until everything below is valid

    # datasets: rank 0 first (it may generate or cache data), then the others
    if not ctx.is_main:
        barrier(ctx)
    data = setup.build_datasets(cfg)
    if ctx.is_main:
        barrier(ctx)
    train_ds, val_ds = data["train"], data["val"]
    seed_everything(cfg.seed)
    kwargs = setup.model_kwargs(cfg, train_ds)
    model = setup.make_model(cfg, kwargs).to(ctx.device)
    loss_fn, optimizer, scheduler, scaler = setup.build_training(cfg, model, ctx.device)

    start_epoch, best_epoch, best_value, history = 0, 0, -math.inf, []
    if resume is not None:
        start_epoch, best_epoch, best_value = _restore(run_dir / "last.pt", cfg, model, optimizer, scheduler, scaler)
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

    net = DistributedDataParallel(model) if ctx.enabled else model
    sampler = DistributedSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
                        drop_last=len(sampler) > cfg.batch_size, pin_memory=ctx.device.type == "cuda")
    eval_kwargs = setup.eval_options(cfg, val_ds)
    save = dict(model_name=cfg.model.name, model_kwargs=kwargs, preprocessing=train_ds.preprocessing)
    if cfg.data.patch_size:  # 3D patch training: predict uses the same window by default
        save["patch_size"] = [int(s) for s in cfg.data.patch_size]
    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)

    epochs = log.bar(range(start_epoch, end_epoch), total=end_epoch - start_epoch, desc="training", leave=True)
    for epoch in epochs:
        started = time.perf_counter()
        seed_everything(epoch_seed(cfg.seed, epoch, ctx.rank))
        sampler.set_epoch(epoch)
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
        train_loss = _train_epoch(net, loader, loss_fn, optimizer, scaler, cfg, ctx, log, epoch)
        broadcast_buffers(ctx, model)  # e.g. BatchNorm running stats: each rank updated its own
        scheduler.step()
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lrs}
        improved = False
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            _, report = evaluate_dataset(model, val_ds, ctx, with_hd95=False, log=log, **eval_kwargs)
            record["val"] = _flat_scores(report)
            value = record["val"][cfg.monitor]
            improved = value > best_value
            if improved:
                best_epoch, best_value = epoch + 1, value
        record["time_s"] = round(time.perf_counter() - started, 3)
        record["best"] = improved
        history.append(record)
        if ctx.is_main:
            log.log_epoch(record)
            if improved:
                save_checkpoint(run_dir / "best.pt", **save, state_dict=model.state_dict(), epoch=epoch + 1,
                                metrics=record["val"], monitor=cfg.monitor)
            save_checkpoint(run_dir / "last.pt", **save, state_dict=model.state_dict(), epoch=epoch + 1,
                            best_epoch=best_epoch, best_value=best_value, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), rng=rng_state())
        val = record.get("val")
        epochs.set_postfix(loss=f"{train_loss:.4f}", **({"val_dice": f"{val['dice']:.4f}"} if val else {}))
        val_text = f" val dice {val['dice']:.4f} iou {val['iou']:.4f}{' *' if improved else ''}" if val else ""
        log.info(f"epoch {epoch + 1}/{cfg.epochs} loss {train_loss:.4f}{val_text} ({record['time_s']:.1f} s)")
        barrier(ctx)

    digests = all_gather_objects(ctx, weights_digest(model))
    result = TrainResult(run_dir, best_epoch, best_value, history)
    if end_epoch < cfg.epochs:
        log.info(f"stopped after epoch {end_epoch}; continue with: kanseg train --resume {run_dir}")
        return result

    best_state = broadcast_object(ctx, load_checkpoint(run_dir / "best.pt")["state_dict"] if ctx.is_main else None)
    model.load_state_dict(best_state)
    rows, report = evaluate_dataset(model, val_ds, ctx, with_hd95=True, log=log, **eval_kwargs)
    result.summary = {
        "run": {"model": cfg.model.name, "params": n_params, "dataset": cfg.data.dataset, "split": cfg.data.split,
                "epochs": cfg.epochs, "best_epoch": best_epoch, "monitor": cfg.monitor, "best_value": best_value,
                "world_size": ctx.world_size, "weights_sha1_per_rank": digests, "protocol_note": note},
        cfg.data.val_subset: {"checkpoint": "best.pt", "epoch": best_epoch, "report": report, "cases": rows},
    }
    if ctx.is_main:
        write_json(run_dir / "summary.json", result.summary)
        log.info(format_report(report, f"best.pt (epoch {best_epoch}) on {cfg.data.val_subset}:"))
        log.info(f"run directory: {run_dir}")
    return result
