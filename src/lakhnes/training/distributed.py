"""``torchrun`` data parallelism with no code change: process rank and device, barriers, the DDP-wrapped model."""

from __future__ import annotations

import contextlib
import os

import torch


def init_process() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; starts the process group (nccl, or gloo on CPU)
    and, on CUDA, lets float32 matmuls outside bf16 autocast use TF32 cores."""
    rank, world, local = 0, int(os.environ.get("WORLD_SIZE", "1")), 0
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, local = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.cuda.is_available():
        return rank, world, torch.device("cpu")
    device = torch.device("cuda", local)
    torch.cuda.set_device(device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return rank, world, device


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def wrap_model(model: torch.nn.Module, world: int, device: torch.device, compile: bool = False) -> torch.nn.Module:
    """The module the steps call: ``model`` in DDP when several processes train, maybe ``torch.compile``d."""
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        net = torch.compile(net, dynamic=False)  # two shapes: empty memory, then full
    return net


def grad_sync(net: torch.nn.Module, sync: bool):
    """Context for one backward pass: DDP's ``no_sync`` unless ``sync`` (the last chunk of an accumulated batch)."""
    return net.no_sync() if not sync and hasattr(net, "no_sync") else contextlib.nullcontext()
