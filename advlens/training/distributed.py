"""Multi-process training with DistributedDataParallel (``torchrun``).

When ``WORLD_SIZE`` > 1 in the environment (as ``torchrun --nproc_per_node N`` sets it), the
process group is initialised from the environment (``env://``): NCCL when the run uses CUDA (one GPU
per process, ``cuda:LOCAL_RANK``), gloo on the CPU. Otherwise everything here is a no-op for a
single process.

Data sharding follows ``torch.utils.data.DistributedSampler``: the epoch's permutation (the same on
every rank) is padded by wrapping around to a multiple of the world size, and rank r takes every
world-th index starting at r, so all ranks take the same number of steps. The configured batch
size is the global batch: each rank takes ``batch_size // world_size`` images per step, and DDP
averages the gradients, so one step of N processes equals one step of one process on the whole
batch. Only rank 0 writes the run store, the log and the checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any_flag(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (a max all-reduce)."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast_flags(self, *flags: bool) -> tuple[bool, ...]:
        """Rank 0's flags, on every rank."""
        if not self.enabled:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=self._device())
        dist.broadcast(t, src=0)
        return tuple(bool(v) for v in t.tolist())

    def broadcast_str(self, text: str | None) -> str:
        """Rank 0's string on every rank (as a length-prefixed uint8 tensor)."""
        if not self.enabled:
            return text or ""
        data = (text or "").encode()
        length = torch.tensor([len(data)], dtype=torch.int64, device=self._device())
        dist.broadcast(length, src=0)
        n = int(length.item())
        if n == 0:
            return ""
        buf = torch.zeros(n, dtype=torch.uint8, device=self._device())
        if self.is_main:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buf, src=0)
        return bytes(buf.cpu().tolist()).decode()

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them at the
        start of each forward; after the last step each rank still holds the statistics of its own
        shard, so a checkpoint or a resume needs them synced."""
        if not self.enabled:
            return
        for buf in module.buffers():
            dist.broadcast(buf.data, src=0)

    def gather_bytes(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's uint8 tensor of equal size (e.g. an RNG state), on every rank, CPU."""
        if not self.enabled:
            return [t]
        src = t.to(self._device())
        out = [torch.empty_like(src) for _ in range(self.world_size)]
        dist.all_gather(out, src)
        return [o.cpu() for o in out]


def from_env() -> DistContext:
    """The context this process runs in, without initialising anything."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(
        rank=int(os.environ.get("RANK", "0")), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def init(use_cuda: bool) -> DistContext:
    """Initialise the default process group when launched by torchrun with WORLD_SIZE > 1."""
    ctx = from_env()
    if not ctx.enabled:
        return ctx
    ctx.backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=ctx.backend, init_method="env://")
    return ctx


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """DistributedSampler's split: pad by wrapping to a multiple of ``world_size``, take every world-th."""
    if world_size <= 1:
        return indices
    n = len(indices)
    total = -(-n // world_size) * world_size
    if total > n:
        reps = -(-(total - n) // n)
        indices = torch.cat([indices, indices.repeat(reps)[: total - n]])
    return indices[rank:total:world_size]
