"""Train notebook 05's DCGAN or notebook 08's WGAN-GP on several processes: torchrun and DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 scaling/train_ddp.py --model dcgan        # 2 processes on this machine
    torchrun --standalone --nproc_per_node=8 scaling/train_ddp.py --image-folder DIR  # 8 GPUs of one node
    python scaling/train_ddp.py --model wgan-gp                                        # 1 process, the same code

The models, the DCGAN's generator and discriminator and the WGAN-GP's generator, critic and gradient penalty, are
the notebooks' own: their cells tagged "ddp", executed by utils.notebook_cells in the chosen run profile, which
also gives the defaults (steps, batch, learning rate). The training loop is the notebook's loop made distributed:
- every process holds a whole copy of G and of D, each wrapped in its own DistributedDataParallel with its own
  optimizer; a backward pass averages the gradients over the processes, so every copy takes the same step;
- `--batch` is the global batch: each of N processes takes batch/N images per step, its shard of a
  DistributedSampler that draws a new order every epoch (set_epoch); the noise of every step is drawn for the
  whole global batch from a seed and the step number, and each process takes its slice. The run is then the same
  on 1 process and on N (exactly, without batch norm), and a resumed run continues as if never stopped;
- only rank 0 logs (utils.Logger), draws sample grids and writes checkpoints (utils.TrainingRun); every rank reads
  the checkpoint when it resumes; the losses are averaged over the ranks and every rank checks them
  (utils.check_finite), so all stop together at a NaN instead of leaving the others waiting.
On GPUs the backend is NCCL and batch norm becomes SyncBatchNorm (statistics over the global batch); on CPUs it is
gloo, and each process normalises its own share of the batch.

Options for the tests and the course's measurements: --no-batchnorm (replace batch norm with identities, for the
test that 1 process with batch B and 2 with B/2 each take the same steps), --float64, --report-writes (print every
file this process opens for writing, to check that only rank 0 writes), --threads.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from utils.imagefolder import ImageFolder, default_workers  # noqa: E402
from utils.resume import CHECKPOINT_EVERY_S  # noqa: E402

NOTEBOOKS = {"dcgan": "05_dcgan", "wgan-gp": "08_wgan"}
TALK_CHANNELS = (1024, 512, 256, 128)  # notebook 05's 64x64 RGB generator (the talk's)


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_processes() -> tuple[int, int, int, torch.device]:
    """Join the process group torchrun set up (or make a group of one under plain python); return rank, world
    size, local rank and this process's device: the GPU of its local rank (NCCL), else the CPU (gloo)."""
    if "RANK" not in os.environ:  # plain `python train_ddp.py`: a group of one, so the code path is the same
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available() and os.environ.get("COURSE_DEVICE", "cuda").startswith("cuda"):
        if local >= torch.cuda.device_count():
            raise SystemExit(f"process {local} of this node has no GPU: it has {torch.cuda.device_count()}. Start at "
                             "most one process per GPU (--nproc_per_node), or set COURSE_DEVICE=cpu to use the CPU.")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return rank, world, local, device


def report_writes(rank: int) -> None:
    """Print `[rank R writes] PATH` on stderr for every file or folder this process creates, opens for writing,
    renames or deletes (Python's audit events), so that a test can check which rank writes what."""
    def hook(event, args):
        path = None
        if event == "open" and args and not isinstance(args[0], int):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                    (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                path = args[0]
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "shutil.copyfile"):
            path = args[1] if event in ("os.rename", "shutil.copyfile") else args[0]
        if path is not None and not isinstance(path, int):
            sys.stderr.write(f"[rank {rank} writes] {os.fsdecode(path)}\n")
    sys.addaudithook(hook)


def ddp(module: nn.Module, device: torch.device, sync_buffers: bool) -> DDP:
    """DistributedDataParallel(module), copying rank 0's buffers into every rank before each forward pass or not.

    PyTorch 2.13 renamed the flag broadcast_buffers to forward_sync_buffers; both mean the same here.
    """
    flag = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None, **{flag: sync_buffers})


# ----------------------------------------------------------------------------- data


class ShardedSteps:
    """This process's share of every training step: a DistributedSampler per epoch, cut into local batches.

    Step s is local batch s % per_epoch of epoch s // per_epoch. set_epoch(epoch) draws that epoch's order from
    seed + epoch, the same permutation on every rank; rank r takes positions r, r + N, r + 2N, ... of it, so the N
    local batches of a step together are exactly the global batch one process would take.
    """

    def __init__(self, n: int, global_batch: int, rank: int, world: int, seed: int):
        self.sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.local = global_batch // world
        self.per_epoch = len(self.sampler) // self.local
        if self.per_epoch < 1:
            raise SystemExit(f"{n:,} images do not fill one global batch of {global_batch}: use a smaller --batch.")
        self.start = 0

    def __iter__(self):
        epoch, skip = divmod(self.start, self.per_epoch)
        while True:
            self.sampler.set_epoch(epoch)  # forget this and every epoch repeats the first one's order
            order = list(self.sampler)
            for b in range(skip, self.per_epoch):
                yield order[b * self.local:(b + 1) * self.local]
            epoch, skip = epoch + 1, 0


def real_batches(images, steps: ShardedSteps, start: int, device, dtype, workers: int):
    """Endless local batches from step `start` on: indexed from a tensor in memory, or decoded from an image
    folder by DataLoader workers."""
    steps.start = start
    if torch.is_tensor(images):
        for idx in steps:
            yield images[idx].to(device, dtype)
    else:
        loader = DataLoader(images, batch_sampler=steps, num_workers=workers, pin_memory=device.type == "cuda")
        for batch in loader:
            yield batch.to(device).to(dtype).div_(127.5).sub_(1.0)


def step_noise(seed: int, step: int, global_batch: int, *draws) -> list[torch.Tensor]:
    """The random numbers of one step for the whole global batch, drawn from (seed, step): one tensor
    (global_batch, *shape) per ("normal" | "uniform", shape). Every rank draws the same numbers and takes its
    slice, rows rank, rank + N, ... as the DistributedSampler deals images, so that noise row i goes with image i
    of the global batch and a step's noise does not depend on how many processes share it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return [torch.randn(global_batch, *shape, generator=g) if kind == "normal"
            else torch.rand(global_batch, *shape, generator=g) for kind, shape in draws]


def without_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every batch-norm layer by an identity (in place; returns the model)."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            without_batchnorm(child)
    return model


# ----------------------------------------------------------------------------- the run


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[1])
    p.add_argument("--model", choices=sorted(NOTEBOOKS), default="dcgan")
    p.add_argument("--profile", default=None, help="smoke | cpu | gpu: the notebook's settings (default $COURSE_PROFILE)")
    p.add_argument("--steps", type=int, help="generator steps (default: the notebook's for the profile)")
    p.add_argument("--batch", type=int, help="GLOBAL batch, split over the processes (default: the notebook's)")
    p.add_argument("--lr", type=float, help="Adam learning rate of G and D (default: the notebook's)")
    p.add_argument("--dataset", help="mnist or fashion-mnist (default: the notebook's)")
    p.add_argument("--image-folder", default=os.environ.get("COURSE_IMAGE_FOLDER", ""),
                   help="dcgan only: a folder of images for the 64x64 RGB model")
    p.add_argument("--g-channels", type=int, nargs="+", help="dcgan: G's channels (default: the notebook's)")
    p.add_argument("--out", help="run folder (default runs/13_scaling_up/<model>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=float, default=CHECKPOINT_EVERY_S, help="seconds between checkpoints")
    p.add_argument("--grid-every", type=int, help="steps between sample grids (0: none; default steps / 4)")
    p.add_argument("--print-every", type=int, help="steps between status lines (default steps / 10)")
    p.add_argument("--n-samples", type=int, default=utils.N_SAMPLES, help="fixed-seed samples saved at the end")
    p.add_argument("--workers", type=int, help="image folders: decoding workers per process")
    p.add_argument("--threads", type=int, help="torch threads per process (torchrun's default: 1)")
    p.add_argument("--no-batchnorm", action="store_true", help="replace batch norm in G and D by identities")
    p.add_argument("--float64", action="store_true", help="train in float64 (the equivalence test)")
    p.add_argument("--fresh", action="store_true", help="ignore the last checkpoint")
    p.add_argument("--report-writes", action="store_true", help="print every file this process writes")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    rank, world, local_rank, device = start_processes()
    if args.report_writes:
        report_writes(rank)
    if args.threads:
        torch.set_num_threads(args.threads)
    say = print if rank == 0 else (lambda *a, **k: None)
    profile = args.profile or utils.get_profile()
    ns = utils.notebook_cells(NOTEBOOKS[args.model], tags=("ddp",), profile=profile, quiet=True)
    dcgan = args.model == "dcgan"
    steps = args.steps or ns["STEPS" if dcgan else "GP_G_STEPS"]
    batch = args.batch or ns["BATCH_SIZE"]
    lr = args.lr or ns["LR" if dcgan else "GP_LR"]
    dataset = args.dataset or ns["DATASET"]
    z_dim = ns["Z_DIM"]
    n_critic = 1 if dcgan else ns["GP_N_CRITIC"]
    if batch % world:
        raise SystemExit(f"--batch {batch} does not split evenly over {world} processes; use a multiple of {world}.")
    local = batch // world
    dtype = torch.float64 if args.float64 else torch.float32
    torch.set_default_dtype(dtype)
    folder = args.image_folder if dcgan else ""
    if args.image_folder and not dcgan:
        raise SystemExit("--image-folder needs --model dcgan: notebook 08's critic reads 28x28 digits.")

    # the data, whole on every rank; each takes its shard of every step
    if folder:
        images = ImageFolder(folder, 64)
        n, channels_out, size = len(images), 3, 64
    else:
        size = ns["IMAGE_SIZE"] if dcgan else 28
        if rank == 0:  # rank 0 alone may download; the others read what it found once it has
            images, _ = utils.load_dataset(dataset, "train", size=size)
        dist.barrier()
        if rank != 0:
            with contextlib.redirect_stdout(io.StringIO()):
                images, _ = utils.load_dataset(dataset, "train", size=size, download=False)
        n, channels_out = len(images), 1
    shards = ShardedSteps(n, batch, rank, world, args.seed)

    # the notebook's models, built alike on every rank (DDP also copies rank 0's weights to all at the start)
    torch.manual_seed(args.seed)
    if dcgan:
        g_channels = tuple(args.g_channels or (TALK_CHANNELS if folder else ns["G_CHANNELS"]))
        k0 = size // 2 ** len(g_channels)
        G = ns["Generator"](z_dim=z_dim, channels=g_channels, out_channels=channels_out, k0=k0)
        D = ns["Discriminator"](channels=tuple(reversed(g_channels)), in_channels=channels_out, k_last=k0)
        G.apply(ns["init_weights"])
        D.apply(ns["init_weights"])
        model_text = f"notebook 05's DCGAN, G channels {g_channels}, {size}x{size}x{channels_out}"
    else:
        G, D = ns["Generator"](z_dim=z_dim, w=ns["WIDTH"]), ns["Critic"](w=ns["WIDTH"])
        model_text = f"notebook 08's WGAN-GP, width {ns['WIDTH']}, {n_critic} critic steps per G step"
    if args.no_batchnorm:
        G, D = without_batchnorm(G), without_batchnorm(D)
        model_text += ", batch norm removed"
    G, D = G.to(device, dtype), D.to(device, dtype)
    if not args.float64:  # as the notebooks do: the layout convolution kernels prefer (speed only)
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        # a 1-channel layer's channels_last weight has strides that DDP's gradient buckets do not expect; DDP then
        # copies its gradient, which costs a little speed and nothing else, and warns at every step
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if device.type == "cuda" and world > 1:  # batch statistics over the global batch, as one GPU would compute them
        G, D = nn.SyncBatchNorm.convert_sync_batchnorm(G), nn.SyncBatchNorm.convert_sync_batchnorm(D)
    betas = (ns["BETA1"], 0.999) if dcgan else tuple(ns["GP_BETAS"])
    g_optimizer = torch.optim.Adam(G.parameters(), lr=lr, betas=betas, fused=True)  # fused: one kernel for all
    d_optimizer = torch.optim.Adam(D.parameters(), lr=lr, betas=betas, fused=True)  # parameters (speed only)
    schedulers = {} if dcgan else {"g": utils.lr_decay(g_optimizer, steps, ns["LR_DECAY_FROM"]),
                                   "d": utils.lr_decay(d_optimizer, steps, ns["LR_DECAY_FROM"])}

    # resume: every rank reads the checkpoint (models, optimizers, schedules); only rank 0 will write one
    out = Path(args.out) if args.out else utils.run_dir(f"13_scaling_up/{args.model}")
    config = dict(model=args.model, profile=profile, data=folder or dataset, n_train=n, steps=steps, batch=batch,
                  lr=lr, seed=args.seed, no_batchnorm=args.no_batchnorm, float64=args.float64,
                  g_channels=list(g_channels) if dcgan else ns["WIDTH"])  # not the process count: N may change
    run = utils.TrainingRun(out / "checkpoint.pt", config, total_steps=steps, models={"G": G, "D": D},
                            optimizers={"g": g_optimizer, "d": d_optimizer}, schedulers=schedulers,
                            fresh=args.fresh, every_s=args.checkpoint_every)
    with contextlib.redirect_stdout(sys.stdout if rank == 0 else io.StringIO()):
        start = run.start()
    starts = [None] * world
    dist.all_gather_object(starts, start)
    if len(set(starts)) != 1:
        raise SystemExit(f"the ranks resume at different steps {starts}: one read another checkpoint. Run again.")

    # G: one forward pass per backward pass, and its batch-norm running statistics are what samples are drawn
    # with, so rank 0's are copied into every rank before each forward: every rank's G samples like the saved one.
    G = ddp(G, device, sync_buffers=True)
    # D: buffers NOT synced, deliberately. D runs two or three forward passes (real, fake, the penalty's
    # interpolates) before one backward; copying rank 0's batch-norm buffers into the others before each pass
    # changes, in place, tensors the first pass saved for the backward: "one of the variables needed for gradient
    # computation has been modified by an inplace operation" (PyTorch issues 22095 and 175024; the PyTorch pinned
    # here hides the version change, and still overwrites the buffers). D's running statistics are never used,
    # since D always runs in training mode, so there is nothing to keep in step.
    D = ddp(D, device, sync_buffers=False)

    threads = torch.get_num_threads()
    say(f"{world} process(es) × {threads} thread(s), backend {dist.get_backend()}, device {device.type} · "
        f"{model_text} · {n:,} {'images' if folder else dataset + ' images'} · {steps} steps · global batch {batch} "
        f"= {world} × {local} · Adam lr {lr} · profile {profile}")
    first = [None] * world
    dist.all_gather_object(first, next(iter(ShardedSteps(n, batch, rank, world, args.seed)))[:4])
    say("step 1, first image indices of each rank: " + " · ".join(f"rank {r} {f}" for r, f in enumerate(first)))

    logger = utils.Logger(args.model, root=out, resume_step=start) if rank == 0 else None
    workers = args.workers if args.workers is not None else max(1, default_workers() // world)
    batches = real_batches(images, shards, start * n_critic, device, dtype, workers)
    fixed_z = torch.randn(16, z_dim, generator=torch.Generator().manual_seed(16)).to(device, dtype)
    grid_every = args.grid_every if args.grid_every is not None else max(1, steps // 4)
    print_every = args.print_every or max(1, steps // 10)
    criterion = nn.BCEWithLogitsLoss()
    autocast = contextlib.nullcontext() if args.float64 else utils.autocast(device)
    timed_from, timed_start = None, None

    for step in range(start, steps):
        if step == start + min(2, steps - start - 1):  # the speed is timed after two warm-up steps
            timed_from, timed_start = step, time.perf_counter()
        if dcgan:  # notebook 05's train_step, its batch and noise shared out over the ranks
            real = next(batches)
            (z,) = step_noise(args.seed, step, batch, ("normal", (z_dim,)))
            z = z[rank::world].to(device, dtype)                  # this rank's slice, interleaved as the sampler
            ones, zeros = torch.ones(local, 1, device=device, dtype=dtype), torch.zeros(local, 1, device=device, dtype=dtype)
            with autocast:
                fake = G(z)
                real_logits, fake_logits = D(real), D(fake.detach())
                d_loss = criterion(real_logits, ones) + criterion(fake_logits, zeros)
            d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()                       # DDP averages D's gradients over the ranks during this pass
            d_optimizer.step()
            D.requires_grad_(False)                 # the G step needs gradients through D, not D's own
            with autocast:
                g_loss = criterion(D(fake), ones)   # the non-saturating loss
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()                       # ... and G's here
            g_optimizer.step()
            D.requires_grad_(True)
            scalars = dict(d_loss=d_loss, g_loss=g_loss, d_real=torch.sigmoid(real_logits).mean(),
                           d_fake=torch.sigmoid(fake_logits).mean())
        else:  # notebook 08's WGAN-GP loop
            draws = step_noise(args.seed, step, batch,  # z and the penalty's eps per critic step, then G's z
                               *[("normal", (z_dim,)), ("uniform", (1, 1, 1))] * n_critic, ("normal", (z_dim,)))
            draws = [d[rank::world].to(device, dtype) for d in draws]   # the penalty pairs real i with z i, eps i
            for k in range(n_critic):
                real = next(batches)
                with torch.no_grad():
                    fake = G(draws[2 * k])
                with autocast:
                    w_estimate = D(real).mean() - D(fake).mean()
                    # the DDP-safe penalty: autograd.grad with respect to the interpolates only (create_graph=True
                    # keeps the graph), then one ordinary backward of the whole loss, in which DDP averages
                    penalty = ns["gradient_penalty"](D, real, fake, draws[2 * k + 1])
                    d_loss = -w_estimate + ns["GP_WEIGHT"] * penalty
                d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                d_optimizer.step()
            D.requires_grad_(False)
            with autocast:
                g_loss = -D(G(draws[-1])).mean()
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optimizer.step()
            D.requires_grad_(True)
            for scheduler in schedulers.values():
                scheduler.step()
            scalars = dict(d_loss=d_loss, g_loss=g_loss, w_estimate=w_estimate, penalty=penalty)

        # the losses averaged over the ranks, checked on every rank: a NaN stops all of them at the same step
        values = torch.stack([v.detach().to(torch.float64) for v in scalars.values()])
        dist.all_reduce(values)
        scalars = dict(zip(scalars, (values / world).tolist()))
        utils.check_finite(step, **{k: scalars[k] for k in ("d_loss", "g_loss")})
        done = step + 1
        if rank == 0:
            logger.log(done, **scalars)
            if grid_every and (done % grid_every == 0 or done == steps):
                logger.log_images(utils.sample(G.module, fixed_z), done)
            if done % print_every == 0 or done == steps:
                logger.display_status(done, steps, **scalars)
            run.maybe_save(done)

    if timed_start is not None:
        seconds = time.perf_counter() - timed_start
        timed = steps - timed_from
        rate = timed * batch * n_critic / seconds
        say(f"speed: {rate:,.0f} real images/s over the last {timed} steps (global batch {batch}, {world} process(es) "
            f"× {threads} thread(s))")
    else:
        rate = None
    if rank == 0:
        logger.close()
        samples = utils.sample(G.module, utils.eval_noise(z_dim, device=device)[:args.n_samples].to(dtype))
        info = {"dataset": "images" if folder else dataset, "model": args.model, "steps": steps, "batch": batch,
                "processes": world, "threads": threads, "images_per_s": rate, "train_seconds": round(run.seconds(), 1),
                "profile": profile}
        utils.save_samples(samples, out.name, root=out.parent, info=info)
        say(f"finished {steps} steps; {run.summary()}")
        say("result: " + json.dumps(info))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
