"""Where ``annotate`` runs the LUKE pipes: the device, the precision and the batch cost.

The decision is a pure function of what was asked and what the machine has (tested without a
GPU); :func:`apply_device` then sets it on every LUKE pipe of a pipeline. The pipes run on CUDA
through torch alone (cupy is not needed): their thinc layers hold the torch modules on the chosen
device, inputs go there from pinned host memory without blocking, and the next batch's inputs are
built while the GPU runs the current one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

#: On a GPU, padded batches may cost this many times the CPU default (the pipes' max_batch_cost).
GPU_BATCH_COST_FACTOR = 8


class DeviceError(ValueError):
    """A device that was asked for and does not exist here."""


@dataclass
class DevicePlan:
    device: str  # "cpu" or "cuda:N"
    precision: Optional[str]  # None: each pipe keeps its own
    batch_cost_factor: int = 1
    max_batch_cost: Optional[int] = None  # None: each pipe's, times batch_cost_factor
    notes: List[str] = field(default_factory=list)

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")


def plan_device(
    gpu_id: Optional[int],
    precision: Optional[str],
    max_batch_cost: Optional[int],
    *,
    cuda_available: bool,
    device_count: int,
    bf16_supported: bool = False,
) -> DevicePlan:
    """The device plan for the flags ``--gpu-id``, ``--precision``, ``--max-batch-cost``."""
    if max_batch_cost is not None and max_batch_cost < 1:
        raise ValueError(f"--max-batch-cost must be positive, got {max_batch_cost}")
    if gpu_id is None or gpu_id < 0:
        return DevicePlan("cpu", precision, 1, max_batch_cost)
    if not cuda_available:
        raise DeviceError(
            f"--gpu-id {gpu_id}: torch sees no CUDA device (torch.cuda.is_available() is false); "
            "drop --gpu-id to run on the CPU, or install a CUDA build of torch"
        )
    if gpu_id >= device_count:
        raise DeviceError(f"--gpu-id {gpu_id}: this machine has {device_count} CUDA device(s), ids 0-{device_count - 1}")
    plan = DevicePlan(f"cuda:{gpu_id}", precision, GPU_BATCH_COST_FACTOR, max_batch_cost)
    if precision is None:
        return plan
    from ..model.views.precision import get_precision

    # The mode's own GPU fallbacks (the registry's): int8 runs on CPUs only, bfloat16 needs bfloat16.
    plan.precision, note = get_precision(precision).on_cuda(bf16_supported, plan.device)
    if note:
        plan.notes.append(note)
    return plan


def plan_for_this_machine(gpu_id: Optional[int], precision: Optional[str], max_batch_cost: Optional[int]) -> DevicePlan:
    """:func:`plan_device` with this machine's torch."""
    if gpu_id is None or gpu_id < 0:
        return plan_device(None, precision, max_batch_cost, cuda_available=False, device_count=0)
    import torch

    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    bf16 = bool(available and gpu_id < count and torch.cuda.is_bf16_supported())
    return plan_device(gpu_id, precision, max_batch_cost, cuda_available=available, device_count=count, bf16_supported=bf16)


def luke_pipes(nlp) -> list:
    from ..pipeline._shared.base import LukePipe

    return [(name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, LukePipe)]


def apply_device(nlp, plan: DevicePlan) -> List[str]:
    """Set ``plan`` on every LUKE pipe of ``nlp`` (loading its weights); returns what was set."""
    from ..layers.head_layer import luke_shim

    done = []
    for name, pipe in luke_pipes(nlp):
        cost = plan.max_batch_cost if plan.max_batch_cost is not None else pipe.cfg["max_batch_cost"] * plan.batch_cost_factor
        pipe.configure(precision=plan.precision, max_batch_cost=int(cost))
        pipe._ensure_loaded()
        luke_shim(pipe.model).set_device(plan.device)
        done.append(f"{name}: {plan.device}, {pipe.cfg['precision']}, max_batch_cost {pipe.cfg['max_batch_cost']}")
    return done
