"""Training speed on a CPU: the notebooks' own training steps against the tutorials' loops they replace, in one run.

    python benchmarks/train_speed.py              # speed, FLOP/s, quality at equal images seen; writes results.md
    python benchmarks/train_speed.py --quick      # speed only (a minute or two); no results file
    python benchmarks/train_speed.py --no-bf16    # the same with utils.autocast switched off (plain float32)

The course side is the notebook's own code, executed as the notebook executes it: its setup cell, its parameters
cell (cpu profile) and its cells tagged "benchmark" (the models, the optimizers and `train_step`), for
04_vanilla_gan and 05_dcgan. Each timed step is what the notebook's loop does every step: the next batch of
utils.Batches, train_step(real) and utils.check_finite. The references are the loops the notebooks retell:
  vanilla: the seed tutorial's loop, as its readers run it: a Dataset of PIL digits through ToTensor and
           Normalize, a DataLoader with batch 100, the tutorial's MLPs ending in Sigmoid with BCELoss, Adam, fp32;
  dcgan:   the PyTorch DCGAN tutorial's loop on the notebook's own G and D (Sigmoid appended, BCELoss, fp32):
           a Dataset with transforms, a DataLoader with batch 128, separate real and fake backward passes.
Speed is in images per second (the batch sizes differ), the median of ROUNDS rounds with the loops taking turns.
Quality: both sides train from each seed on the same number of images; the course metrics of 1,000 samples.
The DCGAN step's FLOP/s (torch's FLOP counter) is set against the matmul peak measured in the same run.
The last line reads `speedup: vanilla=<x> dcgan=<y>`: images per second of the notebook over its reference.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from report import ROOT, machine, utils, write_section
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

ROUNDS = 5
NOTEBOOKS = {"vanilla": "04_vanilla_gan", "dcgan": "05_dcgan"}
REFERENCE = {"vanilla": ("the seed tutorial's loop", 100), "dcgan": ("the PyTorch DCGAN tutorial's loop", 128)}


# ----------------------------------------------------------------------------- the notebooks' own code


def notebook_code(stem: str, seed: int = 0, profile: str = "cpu") -> dict:
    """Execute the setup, parameters and "benchmark" cells of notebooks/<stem>.ipynb in `profile`; return their
    namespace."""
    try:
        return utils.notebook_cells(stem, tags=("benchmark",), profile=profile, seed=seed)
    except utils.CourseError as exc:
        raise SystemExit(f"{exc} (tag its model and train-step cells 'benchmark')") from None


def noise_shape(G: nn.Module, z_dim: int) -> tuple:
    """The shape of one z that G takes: (z_dim,) or (z_dim, 1, 1)."""
    with torch.no_grad():
        for shape in ((z_dim,), (z_dim, 1, 1)):
            try:
                G.eval()
                G(torch.zeros(2, *shape, device=next(G.parameters()).device))
                return shape
            except RuntimeError:
                continue
            finally:
                G.train()
    raise SystemExit("G takes neither (B, Z) nor (B, Z, 1, 1) noise.")


def course_steps(ns: dict, steps: int, seed: int = 0) -> float:
    """Train `steps` steps as the notebook's loop does; return the seconds."""
    batches = utils.Batches(ns["images"], batch_size=ns["BATCH_SIZE"], seed=seed, device=ns["device"]).endless()
    start = time.perf_counter()
    for step in range(steps):
        real = next(batches)
        real = real[0] if isinstance(real, (tuple, list)) else real
        d_loss, g_loss = ns["train_step"](real)[:2]
        utils.check_finite(step, d_loss=d_loss, g_loss=g_loss)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- the tutorials' loops


class Digits(Dataset):
    """Digits as PIL images through a transform, as the tutorials read MNIST."""

    def __init__(self, digits_uint8: np.ndarray, transform):
        self.digits, self.transform = digits_uint8, transform

    def __len__(self):
        return len(self.digits)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.digits[i], mode="L")), 0


def tutorial_models(z_dim: int):
    """The seed tutorial's MLPs: D ends in Sigmoid for BCELoss."""
    def block(n_in, n_out):
        return [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2), nn.Dropout(0.3)]
    D = nn.Sequential(*block(784, 1024), *block(1024, 512), *block(512, 256), nn.Linear(256, 1), nn.Sigmoid())
    G = nn.Sequential(nn.Linear(z_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2),
                      nn.Linear(512, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 784), nn.Tanh())
    return G, D


class Reference:
    """One tutorial loop, ready to train: models, optimizers, an endless DataLoader."""

    def __init__(self, kind: str, ns: dict, digits_uint8: np.ndarray, seed: int = 0):
        torch.manual_seed(seed)
        self.kind, self.batch, self.z_dim = kind, REFERENCE[kind][1], ns["Z_DIM"]
        size = ns["images"].shape[-1]
        steps = [transforms.Pad((size - 28) // 2)] if size > 28 else []
        steps += [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]
        loader = DataLoader(Digits(digits_uint8, transforms.Compose(steps)), batch_size=self.batch, shuffle=True,
                            drop_last=True, generator=torch.Generator().manual_seed(seed))
        self.batches = (real for _ in iter(int, 1) for real, _ in loader)
        if kind == "vanilla":
            self.G, self.D = tutorial_models(self.z_dim)
            betas = (0.9, 0.999)
        else:  # the notebook's own models, in plain float32 and memory format, D ending in Sigmoid
            self.G = copy.deepcopy(ns["G"]).float().to("cpu", memory_format=torch.contiguous_format)
            self.D = nn.Sequential(copy.deepcopy(ns["D"]).float().to("cpu", memory_format=torch.contiguous_format),
                                   nn.Sigmoid())
            betas = (0.5, 0.999)
        self.z_shape = noise_shape(self.G, self.z_dim)
        self.g_optimizer = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=betas)
        self.d_optimizer = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=betas)
        self.loss = nn.BCELoss()

    def train(self, steps: int) -> float:
        ones, zeros = torch.ones(self.batch, 1), torch.zeros(self.batch, 1)
        start = time.perf_counter()
        for _ in range(steps):
            real = next(self.batches)
            real = real.view(self.batch, -1) if self.kind == "vanilla" else real
            fake = self.G(torch.randn(self.batch, *self.z_shape))
            self.d_optimizer.zero_grad()
            d_real = self.loss(self.D(real).view(-1, 1), ones)
            d_real.backward()
            d_fake = self.loss(self.D(fake.detach()).view(-1, 1), zeros)
            d_fake.backward()
            self.d_optimizer.step()
            self.g_optimizer.zero_grad()
            g_loss = self.loss(self.D(fake).view(-1, 1), ones)
            g_loss.backward()
            self.g_optimizer.step()
        return time.perf_counter() - start


# ----------------------------------------------------------------------------- measuring


def metrics_of(G: nn.Module, z_shape: tuple, device) -> dict:
    samples = utils.sample(G, utils.eval_noise(*z_shape, device=device))
    return utils.evaluate(samples.view(len(samples), 1, *samples.shape[-2:]) if samples.ndim == 4
                          else samples.view(-1, 1, 28, 28))


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 10) -> float:
    """The best FLOP/s of an n x n matrix product in `dtype` on this CPU."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = 0.0
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start))
    return best


def measure(kind: str, timing_steps: int, images_seen: int, seeds: tuple, digits_uint8) -> dict:
    ns = notebook_code(NOTEBOOKS[kind])
    ref = Reference(kind, ns, digits_uint8)
    course_steps(ns, 3), ref.train(3)  # warm-up
    course_rates, ref_rates = [], []
    for _ in range(ROUNDS):
        course_rates.append(timing_steps * ns["BATCH_SIZE"] / course_steps(ns, timing_steps))
        ref_rates.append(timing_steps * ref.batch / ref.train(timing_steps))
    out = {"kind": kind, "batch": ns["BATCH_SIZE"], "course": statistics.median(course_rates),
           "reference": statistics.median(ref_rates), "rounds": [c / r for c, r in zip(course_rates, ref_rates)]}
    out["speedup"] = out["course"] / out["reference"]
    real = ns["images"][: ns["BATCH_SIZE"]].to(ns["device"])
    with FlopCounterMode(display=False) as counter:
        ns["train_step"](real)
    out["flops_per_image"] = counter.get_total_flops() / ns["BATCH_SIZE"]
    out["achieved"] = out["flops_per_image"] * out["course"]
    out["peak"] = matmul_peak(torch.bfloat16 if utils.bf16_units() else torch.float32)
    out["course_runs"], out["reference_runs"] = [], []
    for seed in seeds if images_seen else ():
        ns = notebook_code(NOTEBOOKS[kind], seed)
        course_steps(ns, images_seen // ns["BATCH_SIZE"], seed)
        out["course_runs"].append(metrics_of(ns["G"], noise_shape(ns["G"], ns["Z_DIM"]), ns["device"]))
        ref = Reference(kind, ns, digits_uint8, seed)
        ref.train(images_seen // ref.batch)
        out["reference_runs"].append(metrics_of(ref.G, ref.z_shape, "cpu"))
        print(f"  {kind} seed {seed}: notebook {utils.report(out['course_runs'][-1])}\n"
              f"  {kind} seed {seed}: reference {utils.report(out['reference_runs'][-1])}", flush=True)
    return out


def runs_text(runs: list[dict], key: str, fmt: str) -> str:
    return "-" if not runs else (f"{statistics.fmean(m[key] for m in runs):{fmt}} ("
                                 + ", ".join(f"{m[key]:{fmt}}" for m in runs) + ")")


def section(results: list[dict], args) -> str:
    rows = [f"| {NOTEBOOKS[r['kind']]} (batch {r['batch']}) | {REFERENCE[r['kind']][0]} (batch "
            f"{REFERENCE[r['kind']][1]}) | {r['reference']:,.0f} | {r['course']:,.0f} | {r['speedup']:.2f}x | "
            f"{runs_text(r['reference_runs'], 'fd_ratio', '.1f')} | {runs_text(r['course_runs'], 'fd_ratio', '.1f')} | "
            f"{runs_text(r['reference_runs'], 'coverage', '.1f')} | {runs_text(r['course_runs'], 'coverage', '.1f')} |"
            for r in results]
    dc = results[-1]
    return "\n".join([
        f"Written by `python benchmarks/train_speed.py{' --no-bf16' if args.no_bf16 else ''}` on "
        f"{time.strftime('%Y-%m-%d')}: {machine()}; bf16 autocast {'on' if utils.bf16_units() else 'off'}.",
        "",
        "Images per second of each notebook's own training step (its cells tagged `benchmark`, run as the notebook "
        "runs them) against the tutorial loop it replaces, and the course metrics after both trained on "
        f"{args.images:,} images from each seed ({', '.join(map(str, args.seeds))}): mean (each seed).",
        "",
        "| notebook | reference | reference images/s | notebook images/s | ratio | Frechet ratio, reference "
        "| Frechet ratio, notebook | classes, reference | classes, notebook |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Images per second: the median of {ROUNDS} rounds of {args.timing_steps} steps per loop, the loops taking "
        "turns; the ratio of each round: " + "; ".join(f"{r['kind']} " + ", ".join(f"{x:.2f}" for x in r["rounds"])
                                                        for r in results) + ".",
        "",
        f"FLOP/s: the DCGAN step does {dc['flops_per_image'] / 1e6:.1f} MFLOP per image (torch's FLOP counter), so "
        f"at {dc['course']:,.0f} images/s it achieves {dc['achieved'] / 1e9:.1f} GFLOP/s, "
        f"{dc['achieved'] / dc['peak']:.0%} of the {dc['peak'] / 1e9:.1f} GFLOP/s that a "
        f"{'bf16' if utils.bf16_units() else 'float32'} 1024 x 1024 matrix product reaches here.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="speed only, fewer steps, no results file")
    parser.add_argument("--no-bf16", action="store_true", help="switch utils.autocast off: plain float32")
    parser.add_argument("--timing-steps", type=int, default=40, help="timed steps per loop and round")
    parser.add_argument("--images", type=int, default=128_000, help="images each loop trains on, per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.no_bf16:
        utils.training.bf16_units = lambda: False
    images, _ = utils.load_dataset("mnist", "train")
    digits_uint8 = ((images[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    results = []
    for kind in NOTEBOOKS:
        r = measure(kind, 15 if args.quick else args.timing_steps, 0 if args.quick else args.images,
                    tuple(args.seeds), digits_uint8)
        results.append(r)
        print(f"{kind}: reference {r['reference']:,.0f} images/s, notebook {r['course']:,.0f} images/s "
              f"({r['speedup']:.2f}x; rounds {', '.join(f'{x:.2f}' for x in r['rounds'])}); "
              f"{r['achieved'] / 1e9:.1f} GFLOP/s = {r['achieved'] / r['peak']:.0%} of the matmul peak", flush=True)
    if not args.quick:
        heading = "Training speed" + (" without bf16" if args.no_bf16 else "")
        path = write_section(heading, section(results, args), before="The learner's paths")
        print(f"results: {path.relative_to(ROOT)}")
    print(f"speedup: vanilla={results[0]['speedup']:.2f} dcgan={results[1]['speedup']:.2f}")


if __name__ == "__main__":
    main()
