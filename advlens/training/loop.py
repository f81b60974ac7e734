"""The trainer: one loop for every objective, with logging, evaluation, checkpoints and resume.

Per optimiser step: set the scheduled learning rate, take the next batch of the epoch's
permutation (shared by all ranks, seeded by ``seed`` and the epoch, sharded per rank), augment it
on the device, ask the objective for the loss (under autocast on CUDA), step. Every
``log_every`` steps rank 0 writes the mean training scalars, the learning rate, the throughput
(img/s, over all ranks), the ETA and the memory in use (RSS on the CPU, max allocated on CUDA) to
the run store. After each epoch (and every ``eval_every`` steps) it measures clean and PGD robust
accuracy on the fixed held-out batch, runs the objective's epoch hook, and saves a resumable
checkpoint (:mod:`advlens.training.state`).

Determinism and resume: the data order of an epoch depends only on (seed, epoch), the
augmentation and attack randomness on the global torch RNG of each rank (seeded by seed and rank),
and evaluations run under a forked RNG with a fixed seed, so they never shift the training stream.
A checkpoint stores step, epoch, position in the epoch, optimiser state and every rank's RNG state;
a resumed run skips the batches already seen and continues with bit-identical state.

Stopping: a cancel flag in the store (polled about once a second), SIGTERM, or ``interrupt_at``
(a step count, for tests) end the run after the current step with a checkpoint and the status
``cancelled``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from ..jobs.store import RunStore, run_dir
from ..jobs.worker import JobLog, StopFlag
from ..models import Classifier, build_model, get_architecture
from ..models.checkpoint import remove_stale_temporaries
from . import distributed, schedule
from .augment import Augment
from .config import FIELDS, ConfigError, TrainConfig, validate
from .data import TrainingData, prepare_data
from .evaluate import clean_accuracy, robust_accuracy
from .init_from import apply_init
from .objectives import EpochContext, Objective, StepContext, get_objective
from .state import load_training_state, save_model_checkpoint, save_training_state

EVAL_SEED = 12345


@dataclass
class TrainerState:
    """What a checkpoint needs besides the tensors. JSON-serialisable."""

    step: int = 0
    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of that epoch already done
    world_size: int = 1
    elapsed_s: float = 0.0
    metrics: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    stopped_early: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def memory_mb(device: torch.device) -> float:
    """Device memory in use: CUDA max allocated, or the process's resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_run_model(cfg: TrainConfig, data: TrainingData) -> Classifier:
    """The model of ``cfg.arch`` for the data's input shape and classes.

    The architecture's default normalisation is kept when its channel count fits the data;
    otherwise the per-channel mean and std of the training images are used.
    """
    spec = get_architecture(cfg.arch).default_spec()
    c = data.shape[0]
    if len(spec.mean) == c:
        mean, std = spec.mean, spec.std
    else:
        x = (
            data.train.pixels[:10_000].float().div(255.0)
            if data.train.pixels.dtype == torch.uint8
            else data.train.pixels[:10_000].float()
        )
        mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
        std = tuple(max(float(v), 1e-3) for v in x.std(dim=(0, 2, 3)))
    try:
        return build_model(
            cfg.arch,
            input_size=data.shape,
            class_names=data.class_names,
            dataset=data.train.name,
            mean=mean,
            std=std,
            arch_kwargs=dict(cfg.arch_kwargs),
        )
    except ValueError as exc:
        raise ConfigError(
            f"{cfg.arch} cannot take {data.train.name} images ({'x'.join(map(str, data.shape))}): {exc}"
        ) from None


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g)


class LogWindow:
    """The training scalars summed since the last log line, with the images seen and the time."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        self.count, self.imgs, self.t0 = 0, 0, time.time()

    def add(self, loss: torch.Tensor, scalars: dict, images: int) -> None:
        self.sums["loss"] += loss.detach().float()
        for k, v in scalars.items():
            self.sums[k] += v.detach().float() if isinstance(v, torch.Tensor) else float(v)
        self.count += 1
        self.imgs += images


class Trainer:
    """Trains ``cfg`` as run ``run_id`` of the store (the run row must exist).

    ``fit()`` returns the final metrics, marks the run done / cancelled, and raises on failure
    (the caller, :func:`advlens.training.jobs.execute`, marks it failed).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        run_id: str,
        store: RunStore | None = None,
        dist_ctx: distributed.DistContext | None = None,
        stop: StopFlag | None = None,
        interrupt_at: int | None = None,
        echo: bool = True,
    ):
        self.cfg = cfg
        self.run_id = run_id
        self.store = store or RunStore()
        self.dist = dist_ctx or distributed.DistContext()
        self.stop = stop if stop is not None else StopFlag()
        if self.stop.store is None:  # the one reader of the cancel flag reads this run's row
            self.stop.store, self.stop.job_id = self.store, run_id
        self.interrupt_at = interrupt_at
        self.folder = run_dir(run_id)
        self.ckpt_dir = self.folder / "checkpoints"
        self.log = JobLog(self.folder / "train.log" if self.dist.is_main else None, echo=echo and self.dist.is_main)

    # ------------------------------------------------------------------------------- set-up
    def _device(self) -> torch.device:
        if self.dist.backend == "nccl":
            return torch.device("cuda", self.dist.local_rank)
        return torch.device(self.cfg.resolved_device())

    def _autocast(self):
        if self.device.type == "cuda" and self.cfg.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return lambda: torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext

    def setup(self) -> None:
        cfg = self.cfg
        validate(cfg)
        self.device = self._device()
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.data = prepare_data(cfg)
        objective_cls = get_objective(cfg.objective)
        self.objective: Objective = objective_cls(cfg.objective_params, cfg)
        self._build_model()
        self._build_optimizer()
        self.augment = Augment(cfg.crop_padding, cfg.flip)
        self.pixels = self.data.train.pixels.to(self.device)
        self.labels = self.data.train.labels.to(self.device)
        self._plan_steps()
        self.state = TrainerState(world_size=self.dist.world_size)
        torch.manual_seed(cfg.seed * 7919 + 1 + self.dist.rank)  # per-rank augmentation / attack stream
        self._resume()

    def _build_model(self) -> None:
        """The run's model on its device (fine-tuned from ``init_from``), wrapped in DDP when distributed."""
        cfg = self.cfg
        model = build_run_model(cfg, self.data)
        if cfg.init_from:  # fine-tuning: the weights of a trained model (a resume then overwrites them)
            model = apply_init(model, cfg.init_from)
        model = self.objective.prepare_model(model)
        self.channels_last = self.device.type == "cuda" and cfg.channels_last
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.train_model: torch.nn.Module = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.train_model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _build_optimizer(self) -> None:
        """The optimiser, autocast and the gradient scaler (fp16 autocast only)."""
        cfg, params = self.cfg, self.model.parameters()
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.autocast = self._autocast()
        fp16 = self.device.type == "cuda" and cfg.amp and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)

    def _plan_steps(self) -> None:
        """Per-rank batch, steps per epoch and the run's total steps (``max_steps`` caps it)."""
        cfg = self.cfg
        self.per_rank_batch = max(1, cfg.batch_size // self.dist.world_size)
        n_shard = len(distributed.shard(torch.arange(len(self.data.train)), 0, self.dist.world_size))
        self.steps_per_epoch = math.ceil(n_shard / self.per_rank_batch)
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total

    def _resume(self) -> None:
        if self.dist.is_main:  # torn temporary files of a worker killed mid-write (the other ranks never write)
            removed = [n for d in (self.folder, self.ckpt_dir) for n in remove_stale_temporaries(d)]
            if removed:
                self.log(f"removed {len(removed)} temporary file(s) left by an interrupted write: {', '.join(removed)}")
        loaded = load_training_state(self.ckpt_dir, map_location=self.device)
        if loaded is None:
            if self.dist.is_main:
                self.store.truncate_metrics(self.run_id, -1)
            return
        model, trainer_state, optim_state, extras = loaded
        self.model.load_state_dict(model.state_dict())
        self.optimizer.load_state_dict(optim_state)
        self.state = TrainerState(**trainer_state)
        rank_key = f"rng.cpu.r{self.dist.rank}"
        if self.state.world_size == self.dist.world_size and rank_key in extras:
            torch.set_rng_state(extras[rank_key])
            cuda_key = f"rng.cuda.r{self.dist.rank}"
            if self.device.type == "cuda" and cuda_key in extras:
                torch.cuda.set_rng_state(extras[cuda_key], self.device)
        else:
            self.log(
                f"the checkpoint was written by {self.state.world_size} process(es), this run has "
                f"{self.dist.world_size}: the random streams restart from the seed"
            )
            self.state.world_size = self.dist.world_size
        if self.dist.is_main:
            self.store.truncate_metrics(self.run_id, self.state.step)
        self.log(
            f"resumed from step {self.state.step} (epoch {self.state.epoch + 1}, batch {self.state.batch_in_epoch})"
        )

    # ------------------------------------------------------------------------------ helpers
    def _rng_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for r, t in enumerate(self.dist.gather_bytes(torch.get_rng_state())):
            out[f"rng.cpu.r{r}"] = t
        if self.device.type == "cuda":
            for r, t in enumerate(self.dist.gather_bytes(torch.cuda.get_rng_state(self.device))):
                out[f"rng.cuda.r{r}"] = t
        return out

    def recipe(self) -> dict:
        """What the checkpoint records of the run: the fields the declaration tags "recipe"
        (:data:`advlens.training.config.FIELDS`), and what the run resolved from them."""
        cfg = self.cfg
        out = {prm.name: getattr(cfg, prm.name) for prm in FIELDS if "recipe" in prm.tags}
        out.update(
            objective_params=self.objective.params,
            adversarial=self.objective.budget_record(),
            augment=self.augment.describe(),
            world_size=self.dist.world_size,
            run_id=self.run_id,
            command=f"python -m advlens train --config runs/{self.run_id}/config.json",
        )
        return out

    def save(self) -> None:
        self.dist.sync_buffers(self.model)  # collective: every rank takes part
        rng = self._rng_tensors()  # collective
        if self.dist.is_main:
            self.state.elapsed_s = self.elapsed()
            save_training_state(self.ckpt_dir, self.model, self.optimizer, self.state.to_dict(), rng, self.recipe())

    def eps_at(self, step: int) -> float:
        """The training budget at ``step``: eps, ramped linearly from 0 over ``eps_warmup`` of the run."""
        ramp = self.cfg.eps_warmup * self.total_steps
        return self.cfg.eps if ramp <= 0 else self.cfg.eps * min(1.0, (step + 1) / ramp)

    def elapsed(self) -> float:
        return self._elapsed_before + (time.time() - self._t_start)

    def _poll_stop(self) -> bool:
        """Rank 0 asks its stop flag (which reads the store's cancel flag about once a second,
        :class:`~advlens.jobs.worker.StopFlag`); every rank learns the verdict."""
        local = self.stop() if self.dist.is_main else bool(self.stop)
        if self.interrupt_at is not None and self.state.step >= self.interrupt_at:
            self.stop.set(f"interrupted at step {self.state.step}")
            local = True
        return self.dist.any_flag(local)

    def evaluate_heldout(self) -> dict[str, float]:
        """Clean and PGD robust accuracy on the fixed held-out batch (rank 0; a forked RNG)."""
        cfg = self.cfg
        x, y = self.data.heldout
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EVAL_SEED)
            out = {"eval/clean_acc": clean_accuracy(self.model, x, y)}
            if cfg.eps > 0 and cfg.eval_steps > 0:
                out["eval/robust_acc"] = robust_accuracy(self.model, x, y, cfg.eps, cfg.eval_steps)
        self.model.train()
        return out

    def robust_acc_fn(self, model, x, y, eps, steps) -> float:
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EVAL_SEED)
            return robust_accuracy(model, x, y, eps, steps)

    # ---------------------------------------------------------------------------------- fit
    def fit(self) -> dict:
        """Train to the end (or until stopped); the steps below, in this order, per epoch."""
        self.setup()
        self._begin()
        window = LogWindow(self.device)
        stopped = False
        while self.state.epoch < self.cfg.epochs and self.state.step < self.total_steps and not stopped:
            prev_weights = self._weights_before_epoch()
            stopped = self._train_epoch(window)
            if stopped:
                break
            verdict_stop, stopped = self._end_epoch(prev_weights)
            if verdict_stop:
                break
        if stopped:
            return self._cancelled()
        return self._finish()

    def _begin(self) -> None:
        """Start the clocks; rank 0 records the plan in the store and the log."""
        cfg, st = self.cfg, self.state
        self._t_start = time.time()
        self._elapsed_before = st.elapsed_s
        self._step0 = st.step
        self._last_eval: tuple[int, dict] | None = None
        if not self.dist.is_main:
            return
        self.store.update(
            self.run_id, total_steps=self.total_steps, epochs=cfg.epochs, step=st.step, world_size=self.dist.world_size
        )
        self.log(
            f"run {self.run_id}: {self.objective.describe()} on {self.data.train.name} "
            f"({len(self.data.train)} train, held-out batch of {len(self.data.heldout[1])} from the "
            f"{self.data.heldout_source}), {cfg.arch}, {cfg.epochs} epoch(s) x {self.steps_per_epoch} "
            f"steps, batch {cfg.batch_size} over {self.dist.world_size} process(es), device {self.device}"
        )

    def _weights_before_epoch(self) -> dict | None:
        """A copy of the weights, for objectives whose epoch hook may roll an epoch back (Fast-AT's guard)."""
        if getattr(self.objective, "may_restore_previous", False):
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return None

    def _train_epoch(self, window: LogWindow) -> bool:
        """The remaining steps of the current epoch; True when a stop was requested."""
        st, cfg = self.state, self.cfg
        perm = distributed.shard(
            epoch_permutation(len(self.data.train), cfg.seed, st.epoch), self.dist.rank, self.dist.world_size
        )
        self.train_model.train()
        while st.batch_in_epoch < self.steps_per_epoch and st.step < self.total_steps:
            loss, scalars, n, lr = self._train_step(perm)
            window.add(loss, scalars, n * self.dist.world_size)
            self._after_step(window, lr)
            if self._poll_stop():
                return True
        return False

    def _batch(self, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of the epoch's permutation, as floats in [0, 1], augmented on the device."""
        b = self.state.batch_in_epoch
        idx = perm[b * self.per_rank_batch : (b + 1) * self.per_rank_batch].to(self.device)
        x = self.pixels[idx]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = self.augment(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    def _train_step(self, perm: torch.Tensor) -> tuple[torch.Tensor, dict, int, float]:
        """One optimiser step: scheduled lr, the objective's loss, backward, step. (loss, scalars, n, lr)."""
        st, cfg = self.state, self.cfg
        x, y = self._batch(perm)
        lr = schedule.apply(
            self.optimizer,
            cfg.schedule,
            st.step,
            self.total_steps,
            cfg.lr,
            cfg.momentum,
            cfg.step_milestones,
            cfg.step_gamma,
        )
        ctx = StepContext(
            step=st.step,
            epoch=st.epoch,
            total_steps=self.total_steps,
            eps=self.eps_at(st.step),
            num_classes=len(self.data.class_names),
            attack_model=self.model,
            device=self.device,
            autocast=self.autocast,
        )
        with self.autocast():
            loss, scalars = self.objective.loss(self.train_model, x, y, ctx)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        st.step += 1
        st.batch_in_epoch += 1
        return loss, scalars, len(y), lr

    def _after_step(self, window: LogWindow, lr: float) -> None:
        """Log the window every ``log_every`` steps (and at the end of an epoch or the run), evaluate
        every ``eval_every`` steps inside an epoch, checkpoint every ``checkpoint_every`` steps."""
        st, cfg = self.state, self.cfg
        last_of_run = st.step >= self.total_steps
        if st.step % cfg.log_every == 0 or last_of_run or st.batch_in_epoch == self.steps_per_epoch:
            self._log_window(window.sums, window.count, lr, window.imgs, time.time() - window.t0)
            window.reset()
        if cfg.eval_every and st.step % cfg.eval_every == 0 and st.batch_in_epoch < self.steps_per_epoch:
            self._evaluate_and_log()
        if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0:
            self.save()

    def _end_epoch(self, prev_weights: dict | None) -> tuple[bool, bool]:
        """Evaluate, run the objective's hook, move to the next epoch, checkpoint.
        Returns (the objective stopped the run, a stop was requested)."""
        st = self.state
        epoch_done = st.batch_in_epoch >= self.steps_per_epoch
        self._evaluate_and_log()
        verdict_stop = False
        if epoch_done or st.step >= self.total_steps:
            # a run that ends inside an epoch (max_steps) still gets the objective's end-of-epoch
            # measurements: rho_2, the attention snapshot, the Fast-AT guard
            verdict_stop = self._epoch_hook(prev_weights)
        if epoch_done:
            st.epoch += 1
            st.batch_in_epoch = 0
        self.save()
        if verdict_stop:
            return True, False
        return False, self._poll_stop()

    def _cancelled(self) -> dict:
        """Checkpoint and mark the run cancelled (Resume continues from here)."""
        st = self.state
        self.save()
        if self.dist.is_main:
            msg = (
                f"{self.stop.reason or 'cancelled'} at step {st.step}/{self.total_steps}; Resume continues "
                "from this checkpoint."
            )
            self.log(msg)
            self.store.finish(self.run_id, "cancelled", msg, step=st.step)
        return dict(st.metrics)

    def _log_window(self, sums, count, lr, imgs, wall_s) -> None:
        if not self.dist.is_main or count == 0:
            return
        st = self.state
        values = {f"train/{k}": float(v) / count for k, v in sums.items()}
        values["lr"] = lr
        values["eps"] = self.eps_at(st.step - 1)
        values["img_per_s"] = imgs / max(wall_s, 1e-9)
        values["mem_mb"] = memory_mb(self.device)
        elapsed = self.elapsed()
        per_step = (time.time() - self._t_start) / max(1, st.step - self._step0)
        eta = per_step * (self.total_steps - st.step)
        values["eta_s"] = eta
        self.store.log_metrics(
            self.run_id,
            st.step,
            st.epoch + st.batch_in_epoch / self.steps_per_epoch,
            values,
            progress={"step": st.step, "epoch": st.epoch, "eta_s": eta},
        )
        self.log(
            f"epoch {st.epoch + 1}/{self.cfg.epochs} step {st.step}/{self.total_steps} "
            f"loss {values['train/loss']:.4f} lr {lr:.3g} {values['img_per_s']:.0f} img/s "
            f"eta {eta:.0f}s elapsed {elapsed:.0f}s mem {values['mem_mb']:.0f} MB"
        )

    def _evaluate_and_log(self) -> dict[str, float]:
        evals: dict[str, float] = {}
        if self.dist.is_main:
            t0 = time.time()
            evals = self.evaluate_heldout()
            evals["eval/seconds"] = time.time() - t0
            st = self.state
            self.store.log_metrics(self.run_id, st.step, st.epoch + st.batch_in_epoch / self.steps_per_epoch, evals)
            shown = ", ".join(f"{k.split('/')[-1]} {v:.4f}" for k, v in evals.items() if k != "eval/seconds")
            self.log(f"held-out batch at step {st.step}: {shown} ({evals['eval/seconds']:.1f}s)")
            self.state.metrics.update({k: v for k, v in evals.items() if k != "eval/seconds"})
            self._last_eval = (st.step, evals)
        self.train_model.train()
        return evals

    def _epoch_hook(self, prev_weights) -> bool:
        """Run the objective's end-of-epoch hook on rank 0 and apply its verdict on every rank.
        Returns whether the objective stopped the run."""
        st = self.state
        stop = restore = False
        message = ""
        if self.dist.is_main:
            ctx = EpochContext(
                epoch=st.epoch,
                model=self.model,
                eps=self.cfg.eps,
                device=self.device,
                guard_batch=self.data.guard,
                robust_accuracy=self.robust_acc_fn,
                history=st.history,
                log=self.log,
                folder=self.folder,
            )
            verdict = self.objective.on_epoch_end(ctx)
            self.model.train()
            if verdict is not None:
                if verdict.metrics:
                    self.store.log_metrics(self.run_id, st.step, st.epoch + 1, verdict.metrics)
                    st.metrics.update(verdict.metrics)  # e.g. rho_2 and attention IoU reach the final metrics
                stop, restore, message = verdict.stop, verdict.restore_previous, verdict.message
        stop, restore = self.dist.broadcast_flags(stop, restore)
        message = self.dist.broadcast_str(message)
        if restore and prev_weights is not None:
            self.model.load_state_dict(prev_weights)
        if stop:
            st.stopped_early = message or "stopped by the objective"
            self.log(
                f"stopping after epoch {st.epoch + 1}: {st.stopped_early}"
                + (" (restored the weights from before this epoch)" if restore else "")
            )
            self.total_steps = st.step
        return stop

    def _finish(self) -> dict:
        """The final metrics (rank 0), the last checkpoint, the final weights and the store's record."""
        metrics = self._final_metrics() if self.dist.is_main else {}
        self.save()
        if self.dist.is_main:
            self._publish(metrics)
        return metrics

    def _final_metrics(self) -> dict:
        """Held-out clean and PGD accuracy (the last evaluation when it was at this step), test accuracy."""
        st, cfg = self.state, self.cfg
        if self._last_eval is not None and self._last_eval[0] == st.step:
            evals = self._last_eval[1]
        else:
            evals = self.evaluate_heldout()
        metrics: dict = {
            "heldout_clean_accuracy": evals["eval/clean_acc"],
            "heldout_images": len(self.data.heldout[1]),
            "heldout_source": self.data.heldout_source,
        }
        if "eval/robust_acc" in evals:
            metrics["heldout_robust_accuracy"] = evals["eval/robust_acc"]
            metrics["robust_attack"] = f"PGD-{cfg.eval_steps}, eps {cfg.eps:.4g}, step 2.5*eps/steps, 1 restart"
        if cfg.test_eval and self.data.test is not None:
            metrics["test_accuracy"] = clean_accuracy(self.model, self.data.test.pixels, self.data.test.labels)
            metrics["test_images"] = len(self.data.test)
            self.store.log_metrics(self.run_id, st.step, st.epoch, {"test/clean_acc": metrics["test_accuracy"]})
        metrics["train_seconds"] = round(self.elapsed(), 1)
        metrics["steps"] = st.step
        if st.stopped_early:
            metrics["stopped_early"] = st.stopped_early
        st.metrics.update(metrics)
        return metrics

    def _publish(self, metrics: dict) -> None:
        """Rank 0: the final weights with their recipe and metrics, and the run marked done."""
        st = self.state
        final = self.folder / "final.safetensors"
        desc = f"{self.cfg.arch} trained on {self.data.train.name} with {self.objective.title} (run {self.run_id})"
        save_model_checkpoint(
            self.model,
            final,
            recipe=self.recipe(),
            metrics=metrics,
            extra_meta={"description": desc, "run_id": self.run_id},
        )
        summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.log(f"done: {summary}")
        self.store.finish(
            self.run_id,
            "done",
            st.stopped_early,
            final_path=str(final),
            metrics=metrics,
            step=st.step,
            total_steps=self.total_steps,
        )
