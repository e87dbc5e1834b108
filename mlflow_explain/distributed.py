"""Which process this is when a launcher starts several (``torchrun``, ``accelerate launch``).

The launchers start one process per device with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in the
environment. All processes train (transformers' ``Trainer`` wraps the model in
``DistributedDataParallel`` and gives each process its share of every batch); only the main
process (rank 0) talks to MLflow and explains, so a distributed job logs one run, with the same
artifacts as a single-process job.

Explaining stays on rank 0 instead of being split across ranks: the default sample is 18 sentences
(seconds of work), the engine already batches them into few passes, and one process writing every
artifact keeps the run's files and metrics identical to a single-process run's.
"""

from __future__ import annotations

import os

__all__ = ["is_distributed", "is_main_process", "rank", "training_arguments", "weight_checksums", "world_size"]


def world_size() -> int:
    """Number of processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    """Whether a launcher started several processes."""
    return world_size() > 1


def is_main_process() -> bool:
    """Whether this process logs and explains (rank 0, or the only process)."""
    return rank() == 0


def training_arguments() -> dict[str, object]:
    """``TrainingArguments`` settings for this launch: none alone; ``ddp_backend`` (``nccl`` with CUDA,
    ``gloo`` otherwise) under a launcher, and ``use_cpu`` on a machine without CUDA, without which
    transformers trains each process on its own (``parallel_mode`` stays ``NOT_PARALLEL``)."""
    if not is_distributed():
        return {}
    import torch

    if torch.cuda.is_available():
        return {"ddp_backend": "nccl"}
    return {"ddp_backend": "gloo", "use_cpu": True}


def weight_checksums(model) -> list[float]:
    """Every process's sum of the model's parameters, gathered (one entry without a launcher).

    After DDP training the copies must be equal; the main job logs these as a check.
    """
    import torch

    local = float(sum(p.detach().double().sum().item() for p in model.parameters()))
    if not (is_distributed() and torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [local]
    gathered: list = [None] * world_size()
    torch.distributed.all_gather_object(gathered, local)
    return [float(value) for value in gathered]
