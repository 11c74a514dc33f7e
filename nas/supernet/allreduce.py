"""What N data-parallel workers of the DNAS loop agree on, over a torch.distributed process group (gloo on
CPU, NCCL on GPU — Ray Train's TorchTrainer sets it up; a test may set one up by hand).

We all-reduce the gradients ourselves instead of wrapping the supernet in DistributedDataParallel:

- each step has two backward passes (weights, then θ) and each needs only its own group averaged; DDP
  would all-reduce every parameter after both;
- in `single_path` mode most candidates do not run, so their gradient is None. DDP needs
  `find_unused_parameters=True` (a graph walk every step) and then reduces zeros, which SGD's momentum and
  weight decay would apply to parameters that 1 worker leaves untouched. Here a parameter keeps no gradient
  exactly when no worker gave it one, as on 1 worker;
- each worker's gradient is weighted by its share of the batch, so a batch that does not split evenly
  (the last one) still gives the gradient of the mean loss over the whole batch.

Batch norm statistics stay per worker during the epoch (as in FBNet's multi-GPU training, no SyncBN); the
running statistics are averaged at the end of every epoch so that every worker, and the checkpoint, holds
the same network.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

SUM_KEYS = ("train_loss", "train_correct", "theta_loss", "theta_correct", "seen", "a_seen")


class WorkerSync:
    """This process is worker `rank` of `world`; the default process group must be initialized."""

    def __init__(self, rank: int | None = None, world: int | None = None):
        self.rank = dist.get_rank() if rank is None else rank
        self.world = dist.get_world_size() if world is None else world
        # NCCL reduces CUDA tensors only; gloo takes either
        self.device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")

    def gradients(self, params: list[nn.Parameter], count: int) -> None:
        """Replace each local gradient (of the mean loss over `count` samples) by the gradient of the mean
        loss over every worker's samples: Σ_w count_w · grad_w / Σ_w count_w."""
        if not params:
            return
        device = params[0].device
        has = [p.grad is not None for p in params]
        flat = torch.cat([(p.grad.detach() * count if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in params]
                         + [torch.tensor(has, dtype=torch.float32, device=device),
                            torch.tensor([float(count)], device=device)])
        dist.all_reduce(flat)
        total, flags = flat[-1], flat[-1 - len(params):-1]
        offset = 0
        for p, flag in zip(params, flags.tolist()):
            n = p.numel()
            if flag > 0:
                grad = (flat[offset:offset + n] / total).view_as(p).to(p.dtype)
                if p.grad is None:
                    p.grad = grad
                else:
                    p.grad.copy_(grad)
            else:
                p.grad = None
            offset += n

    def sums(self, sums: dict) -> None:
        """Add up the epoch's loss and accuracy counters over the workers (in place)."""
        total = torch.tensor([float(sums[k]) for k in SUM_KEYS], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        for key, value in zip(SUM_KEYS, total.cpu().tolist()):
            sums[key] = value if "loss" in key else int(round(value))

    def buffers(self, module: nn.Module) -> None:
        """Average the floating-point buffers (batch norm running statistics) over the workers."""
        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf /= self.world
