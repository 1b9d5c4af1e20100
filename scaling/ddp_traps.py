"""The traps a GAN meets under DistributedDataParallel, each sprung on purpose and then avoided.

    torchrun --standalone --nproc_per_node=2 scaling/ddp_traps.py

Run on 2 CPU processes (gloo) with notebook 05's DCGAN and notebook 08's critic and gradient penalty at toy sizes.
Rank 0 prints what every rank saw. Notebook 13 shows the output; scaling/train_ddp.py is the loop that avoids
all of them.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scaling"))
from train_ddp import ddp  # noqa: E402

import utils  # noqa: E402


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"


def gathered(text: str) -> list[str]:
    """Every rank's text, at rank 0 (and everywhere)."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, text)
    return out


def attempt(fn) -> str:
    try:
        result = fn()
        return result if isinstance(result, str) else "no error"
    except Exception as exc:  # noqa: BLE001 - the trap's error is what we want to show
        return first_line(exc)


def show(rank: int, label: str, texts: list[str]) -> None:
    if rank == 0:
        if len(set(texts)) == 1:
            print(f"  {label} (every rank): {texts[0]}")
        else:
            for r, text in enumerate(texts):
                print(f"  {label} (rank {r}): {text}")


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dcgan = utils.notebook_cells("05_dcgan", tags=("ddp",), profile="smoke", quiet=True)
    wgan = utils.notebook_cells("08_wgan", tags=("ddp",), profile="smoke", quiet=True)
    say = print if rank == 0 else (lambda *a, **k: None)
    torch.manual_seed(0)
    real = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(rank)) * 2 - 1  # each rank its own

    def small_pair():
        torch.manual_seed(0)
        G = dcgan["Generator"](z_dim=8, channels=(16, 8), out_channels=1, k0=7)
        D = dcgan["Discriminator"](channels=(8, 16), in_channels=1, k_last=7)
        return G, D

    # 1 -------------------------------------------------------------------------------------------------------
    say("1 · G and D wrapped as one DDP module")

    class GAN(nn.Module):
        def __init__(self):
            super().__init__()
            self.G, self.D = small_pair()

        def forward(self, x, player):  # the D step runs D alone, the G step runs D(G(z))
            return self.D(x) if player == "D" else self.D(self.G(x))

    def one_module():
        gan = DDP(GAN())
        for _ in range(2):
            fake = gan.module.G(torch.randn(8, 8)).detach()
            d_loss = gan(real, "D").mean() - gan(fake, "D").mean()   # G's parameters take no part
            d_loss.backward()

    show(rank, "wrong", gathered(attempt(one_module)))

    def separate():
        G, D = small_pair()
        G, D = DDP(G), ddp(D, torch.device("cpu"), sync_buffers=False)
        for _ in range(2):
            fake = G(torch.randn(8, 8))
            (D(real).mean() - D(fake.detach()).mean()).backward()    # D's step: G's DDP expects nothing
            (-D(fake).mean()).backward()                               # G's step
        return "2 steps, no error"

    show(rank, "fix: G and D in separate DDP modules, each with its own optimizer", gathered(attempt(separate)))

    # 2 -------------------------------------------------------------------------------------------------------
    say("2 · D with batch norm: two forward passes (real, fake) before one backward, buffers synced by DDP")

    def two_passes(sync: bool, guard: bool = True):
        _, D = small_pair()
        alone = copy.deepcopy(D)  # the same D run without DDP: the running statistics of this rank's own batches
        D = ddp(D, torch.device("cpu"), sync_buffers=sync)
        fake = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(10 + rank)) * 2 - 1
        keep = torch.autograd._unsafe_preserve_version_counter
        if not guard:  # DDP's buffer copy as it was before PyTorch preserved the buffers' version counters
            torch.autograd._unsafe_preserve_version_counter = lambda tensors: contextlib.nullcontext()
        try:
            loss = D(real).mean() - D(fake).mean()  # rank 0's buffers are copied into every rank before each pass
        finally:
            torch.autograd._unsafe_preserve_version_counter = keep
        with D.no_sync():  # gradients stay local here, so a rank that fails cannot leave the other waiting
            loss.backward()
        alone(real), alone(fake)
        own = [m.running_mean for m in alone.modules() if isinstance(m, nn.BatchNorm2d)]
        now = [m.running_mean for m in D.module.modules() if isinstance(m, nn.BatchNorm2d)]
        kept = all(torch.allclose(a, b) for a, b in zip(own, now))
        return "no error; running statistics " + ("its own" if kept else "overwritten with rank 0's")

    show(rank, "wrong, buffer copy unguarded (older PyTorch)", gathered(attempt(lambda: two_passes(True, guard=False))))
    show(rank, f"PyTorch {torch.__version__.split('+')[0]} guards the copy, buffers synced",
         gathered(attempt(lambda: two_passes(True))))
    show(rank, "fix: D's buffers not synced (forward_sync_buffers=False)", gathered(attempt(lambda: two_passes(False))))
    show(rank, "SyncBatchNorm, the fix on GPUs, on this CPU",
         gathered(attempt(lambda: DDP(nn.SyncBatchNorm.convert_sync_batchnorm(small_pair()[1])) and "works")))

    # 3 -------------------------------------------------------------------------------------------------------
    say("3 · the gradient penalty (notebook 08's critic and gradient_penalty)")

    def critic_step(how: str):
        torch.manual_seed(0)
        D = DDP(wgan["Critic"](w=4))
        optimizer = torch.optim.SGD(D.parameters(), lr=0.1)
        fake = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(10 + rank)) * 2 - 1
        eps = torch.rand(8, 1, 1, 1, generator=torch.Generator().manual_seed(20 + rank))
        if how == "no create_graph":
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat)            # create_graph left out
            penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            return f"the penalty {penalty.item():.3g} has requires_grad={penalty.requires_grad}: it adds nothing to D's gradient"
        penalty = wgan["gradient_penalty"](D, real, fake, eps)             # autograd.grad(..., create_graph=True)
        d_loss = D(fake).mean() - D(real).mean() + 10 * penalty
        optimizer.zero_grad()
        if how == "autograd.grad":  # the gradients of the parameters taken by hand: DDP never sees a backward
            for p, g in zip(D.parameters(), torch.autograd.grad(d_loss, list(D.parameters()))):
                p.grad = g
        else:
            d_loss.backward()       # one ordinary backward: DDP averages every gradient over the ranks
        optimizer.step()
        weights = torch.cat([p.detach().flatten() for p in D.parameters()])
        copies = [torch.zeros_like(weights) for _ in range(world)]
        dist.all_gather(copies, weights)
        return f"after one step the ranks' critics differ by {max((c - weights).abs().max().item() for c in copies):.3g}"

    show(rank, "wrong: torch.autograd.grad(d_loss, D.parameters())", gathered(attempt(lambda: critic_step("autograd.grad"))))
    show(rank, "wrong: autograd.grad without create_graph=True", gathered(attempt(lambda: critic_step("no create_graph"))))
    show(rank, "fix: autograd.grad(D(x_hat).sum(), x_hat, create_graph=True), then d_loss.backward()",
         gathered(attempt(lambda: critic_step("backward"))))

    # 4 -------------------------------------------------------------------------------------------------------
    say("4 · logging and checkpoints from every rank")
    folder = Path(tempfile.mkdtemp(prefix="traps-")) if rank == 0 else None
    [folder, *_] = gathered_list(folder)

    def log_from(ranks) -> str:
        for r in ranks:  # one rank after the other, so that the outcome does not depend on timing
            if rank == r:
                logger = utils.Logger("traps", root=folder / f"from_{len(ranks)}", tensorboard=False)
                for step in (1, 2, 3):
                    logger.log(step, d_loss=float(rank))   # each rank logs its own rank as the loss
                logger.close()
            dist.barrier()
        rows = (folder / f"from_{len(ranks)}" / "scalars.csv").read_text().strip().splitlines()[1:]
        kept = sorted({int(float(row.split(",")[1])) for row in rows})
        return (f"{len(ranks)} rank(s) wrote the same scalars.csv; it holds {len(rows)} rows for 3 steps, "
                f"all from rank(s) {kept}")

    show(rank, "wrong: every rank logs", gathered(log_from(range(world))))
    show(rank, "fix: rank 0 alone logs and saves", gathered(log_from([0])))
    if rank == 0:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()

    # 5 -------------------------------------------------------------------------------------------------------
    say("5 · sharding the data: 3,500 images, 16 per rank and step")
    n, local = 3500, 16
    g = torch.Generator().manual_seed(0)  # every rank shuffles with the same seed, as in one-process code
    plain = torch.randperm(n, generator=g)[:local].tolist()
    show(rank, "wrong: each rank shuffles all the data itself", gathered(
        f"rank 0 and rank 1 share {len(set.intersection(*map(set, gathered_list(plain))))} of their {local} images"))
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=0, drop_last=True)
    epoch0 = list(sampler)[:local]
    epoch1_stale = list(sampler)[:local]            # set_epoch forgotten: the same order again
    sampler.set_epoch(1)
    epoch1 = list(sampler)[:local]
    shared = len(set.intersection(*map(set, gathered_list(epoch0))))
    show(rank, "wrong: DistributedSampler without set_epoch",
         gathered(f"epoch 1 starts with epoch 0's images: {epoch1_stale == epoch0}"))
    show(rank, "fix: DistributedSampler and set_epoch(epoch)",
         gathered(f"rank 0 and rank 1 share {shared} images; epoch 1 starts with epoch 0's images: {epoch1 == epoch0}"))
    dist.destroy_process_group()


def gathered_list(values: list) -> list[list]:
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, values)
    return out


if __name__ == "__main__":
    main()
