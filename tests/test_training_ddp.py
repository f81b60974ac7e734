"""DistributedDataParallel on the CPU: 2 processes with gloo end with identical weights, equal to
one process on the whole batch; and ``torchrun -m advlens train`` works."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from advlens.jobs.store import RunStore
from advlens.models import load_checkpoint
from advlens.training import distributed, jobs
from advlens.training.config import TrainConfig
from advlens.training.loop import Trainer

CFG = dict(
    objective="standard",
    dataset="digits",
    limit_train=192,
    val_size=32,
    batch_size=32,
    epochs=2,
    crop_padding=0,
    eval_size=32,
    eval_steps=0,
    log_every=2,
    test_eval=False,
    optimizer="sgd",
    lr=0.05,
    schedule="constant",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, home: str, run_id: str, out: str) -> None:
    os.environ.update(
        ADVLENS_HOME=home,
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    ctx = distributed.init(use_cuda=False)
    try:
        store = RunStore()
        if ctx.is_main:
            assert store.claim(run_id) == "started"
        ctx.barrier()
        cfg = TrainConfig.from_dict(store.require(run_id).config)
        trainer = Trainer(cfg, run_id, store, ctx, echo=False)
        trainer.fit()
        save_file(
            {k: v.contiguous() for k, v in trainer.model.state_dict().items()},
            str(Path(out) / f"rank{rank}.safetensors"),
        )
    finally:
        distributed.shutdown(ctx)


def _train_on_two_ranks(cfg: dict, out: Path):
    """Run ``cfg`` with 2 gloo processes; return its record and rank 0's final weights, after
    checking that both ranks hold identical weights."""
    store = RunStore()
    rec = store.create_run(TrainConfig.from_dict(cfg).to_dict(), "cpu", world_size=2)
    mp.start_processes(
        _rank_main,
        args=(2, _free_port(), os.environ["ADVLENS_HOME"], rec.id, str(out)),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    r0, r1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0)
    return store.require(rec.id), r0


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    store = RunStore()
    rec, r0 = _train_on_two_ranks(CFG, tmp_path)
    assert rec.status == "done" and rec.world_size == 2
    final, _ = load_checkpoint(rec.final_path)
    assert all(torch.equal(final.state_dict()[k], r0[k]) for k in r0)
    # 192 - 32 = 160 images, 2 ranks x 16 per step: 5 steps per epoch, as with one process of batch 32
    assert rec.step == 10

    # One process on the whole batch takes the same steps: DDP averages the two half-batch gradients.
    single = jobs.create(TrainConfig.from_dict(CFG), store)
    jobs.execute(single.id, store, echo=False)
    one, _ = load_checkpoint(store.require(single.id).final_path)
    for k, v in one.state_dict().items():
        assert torch.allclose(v, r0[k], atol=1e-5, rtol=1e-4), k


def test_shard_matches_distributed_sampler():
    from torch.utils.data.distributed import DistributedSampler

    for n, world in ((10, 3), (9, 3), (7, 2), (1, 2)):
        perm = torch.arange(n)
        for rank in range(world):
            ref = list(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False))
            assert distributed.shard(perm, rank, world).tolist() == ref


@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
    reason="torchrun is not installed beside this python",
)
def test_torchrun_cli_runs_a_tiny_ddp_training(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(TrainConfig.from_dict({**CFG, "objective": "fgsm_at", "eps": 0.3, "max_steps": 3}).to_json())
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--standalone", "-m", "advlens", "train", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (rec,) = RunStore().list_runs()
    assert rec.status == "done" and rec.world_size == 2 and rec.step == 3
    assert "over 2 process(es)" in rec.log_path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective, params",
    [
        ("attention", {"snapshot_size": 4}),  # Grad-CAM with create_graph=True inside the loss
        ("deep_defense", {"max_iter": 2, "candidates": 3, "rho_images": 8}),  # unrolled, differentiable DeepFool
        ("feature_denoise", {"steps": 2, "operator": "nonlocal_dot", "stages": "conv2"}),  # inserted blocks
    ],
)
def test_seed_defenses_train_under_ddp_with_identical_weights(objective, params, tmp_path):
    """Double backward (through the CAM and through DeepFool) and a transformed model under DDP:
    the ranks still end with the same weights."""
    cfg = {**CFG, "objective": objective, "objective_params": params, "eps": 0.1, "max_steps": 2, "epochs": 1}
    rec, r0 = _train_on_two_ranks(cfg, tmp_path)
    assert rec.status == "done" and rec.step == 2
    final, meta = load_checkpoint(rec.final_path)
    assert all(torch.equal(final.state_dict()[k], r0[k]) for k in r0)  # the checkpoint is rank 0's
    assert meta["recipe"]["objective"] == objective
    losses = RunStore().metrics(rec.id)["train/loss"]["value"]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
