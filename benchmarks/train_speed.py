"""Training speed on a CPU: the original tutorial's loop against the course's loop, measured in one run.

    python benchmarks/train_speed.py              # speed, quality at equal steps, profiles; writes results.md
    python benchmarks/train_speed.py --quick      # fewer steps (a minute), no results file
    python benchmarks/train_speed.py --nbval      # also time the smoke-profile nbval run of every notebook
    python benchmarks/train_speed.py --notebook-times   # only the notebook table: times and targets

For the vanilla GAN (the seed tutorial's MLPs, batch 100) and a DCGAN (28x28 MNIST), two loops:
  (a) reference, as the tutorial wrote it: a torchvision-style Dataset whose items go through
      ToTensor + Normalize, a DataLoader, a Sigmoid + BCELoss discriminator, fp32, zero_grad();
  (b) course: the images already in memory as one tensor (utils.Batches), logits with
      BCEWithLogitsLoss, real and fake through D in one batch where D has no batch norm,
      bf16 autocast where the CPU has bf16 instructions, channels_last for the convolutions,
      the fused Adam, D's weights frozen during the generator step (no weight gradients
      that the next zero_grad would throw away), and two layers computed the faster way on a CPU
      with the same parameters and the same function: dropout masks from torch.rand (RandDropout)
      and the DCGAN generator's projection of z as a matrix product (ProjectZ).
Both train from the same seeds for the same number of steps; the course metrics of their samples
are compared (means over the seeds: one GAN run is too noisy to judge), so the speed-up is not
bought with quality. A profile of each course loop follows: its speed with each CPU measure taken
away (and, for the DCGAN, with torch.compile added, compile time apart), and its largest operators.
The last line reads
`speedup: vanilla=<x> dcgan=<y>` (steps per second of (b) over (a), measured in this run).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402
from utils.metrics import evaluate  # noqa: E402

Z, BATCH = 100, 100
ROUNDS = 5  # timed rounds per loop; the median counts
SEEDS = (0, 1, 2, 3, 4)  # quality runs per loop; their means count
# The course's targets for each notebook's stored cpu-profile run: its time in minutes and, for a GAN, the
# Frechet-distance ratio to the real-vs-real floor, the classes with at least 5% of the samples and, for the
# conditional GAN, how often the classifier reads the requested digit.
TARGETS = {
    "03_autoencoders": {"minutes": 7},
    "04_vanilla_gan": {"minutes": 6, "fd_ratio": 12, "coverage": 10},
    "05_dcgan": {"minutes": 5, "fd_ratio": 6, "coverage": 10},
    "06_ebgan": {"minutes": 7, "fd_ratio": 12, "coverage": 10},
    "07_began": {"minutes": 7, "fd_ratio": 12, "coverage": 10},
    "08_wgan": {"minutes": 7, "fd_ratio": 6, "coverage": 10},
    "09_gan_pitfalls": {"minutes": 7},
    "10_evaluating_gans": {"minutes": 7},
    "11_conditional_gan": {"minutes": 7, "label_accuracy": 0.9},
}


@functools.cache
def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and its flags, from one read of /proc/cpuinfo per run (empty where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    flags = {flag for line in lines if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return model, flags


def cpu_has_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_info()[1])


def cpu_description() -> str:
    """The CPU's model and its bf16 units: the DCGAN speed-up depends on them (AMX tiles make bf16 convolutions
    about 2.5x faster than fp32 here; AVX-512 bf16 alone, about 1.5x)."""
    model, flags = cpu_info()
    units = [name for flag, name in (("amx_bf16", "AMX bf16"), ("avx512_bf16", "AVX-512 bf16")) if flag in flags]
    return f"{model} ({', '.join(units) or 'no bf16 units'})"


# ----------------------------------------------------------------------------- models


class RandDropout(nn.Dropout):
    """nn.Dropout with its mask drawn as torch.rand(...) >= p: the same distribution (each unit kept with
    probability 1 - p, the kept ones scaled by 1 / (1 - p)), but on a CPU torch.rand draws a mask about 2.5x faster
    than the bernoulli_ that nn.Dropout uses (0.8 against 2.1 ms for 200 x 1024 units, 2 threads). What that is
    worth to the whole loop, the profile in results.md measures."""

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype) * (1 / (1 - self.p))


def vanilla_d(sigmoid: bool, dropout=nn.Dropout) -> nn.Module:
    layers = []
    for n_in, n_out in ((784, 1024), (1024, 512), (512, 256)):
        layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2), dropout(0.3)]
    layers += [nn.Linear(256, 1)] + ([nn.Sigmoid()] if sigmoid else [])
    return nn.Sequential(*layers)


def vanilla_g() -> nn.Module:
    layers = []
    for n_in, n_out in ((Z, 256), (256, 512), (512, 1024)):
        layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(1024, 784), nn.Tanh())


class ProjectZ(nn.ConvTranspose2d):
    """The generator's first layer, a transposed convolution of a 1x1 input, computed as the matrix product it is:
    out[b, o, i, j] = sum_c z[b, c] * weight[c, o, i, j]. The same parameters and outputs; on a CPU oneDNN's
    transposed convolution of a 1x1 input is several times slower than the product, and slower still in bf16."""

    def forward(self, z):  # z (B, C_in, 1, 1) -> (B, C_out, k, k)
        c_out, k = self.weight.shape[1], self.weight.shape[2]
        return (z.flatten(1) @ self.weight.flatten(1)).view(-1, c_out, k, k)


def dcgan_g(width: int = 64, project=nn.ConvTranspose2d) -> nn.Module:  # z (B, 100, 1, 1) -> (B, 1, 28, 28)
    return nn.Sequential(
        project(Z, width * 2, 7, 1, 0, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),  # 7x7
        nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),  # 14x14
        nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh(),  # 28x28
    )


def dcgan_d(sigmoid: bool, width: int = 64) -> nn.Module:  # (B, 1, 28, 28) -> (B, 1)
    return nn.Sequential(
        nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 14x14
        nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True),  # 7x7
        nn.Conv2d(width * 2, 1, 7, 1, 0), nn.Flatten(), *([nn.Sigmoid()] if sigmoid else []),
    )


def init_dcgan(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build(kind: str, reference: bool, seed: int = 0, stock_layers: bool = False):
    """G, D and their Adams. The course loop's models use RandDropout and ProjectZ unless `stock_layers`."""
    utils.seed_everything(seed)
    stock = reference or stock_layers
    if kind == "vanilla":
        G, D = vanilla_g(), vanilla_d(sigmoid=reference, dropout=nn.Dropout if stock else RandDropout)
        betas = (0.9, 0.999)
    else:
        G, D = dcgan_g(project=nn.ConvTranspose2d if stock else ProjectZ), dcgan_d(sigmoid=reference)
        G.apply(init_dcgan)
        D.apply(init_dcgan)
        betas = (0.5, 0.999)
    fused = {} if reference else {"fused": True}
    return G, D, torch.optim.Adam(G.parameters(), 2e-4, betas=betas, **fused), \
        torch.optim.Adam(D.parameters(), 2e-4, betas=betas, **fused)


def noise(kind: str, n: int) -> torch.Tensor:
    return torch.randn(n, Z) if kind == "vanilla" else torch.randn(n, Z, 1, 1)


# ----------------------------------------------------------------------------- (a) the reference loop


class DigitsDataset(Dataset):
    """torchvision.datasets.MNIST's way: a PIL image per item, then the transforms."""

    def __init__(self, images_uint8, transform):
        self.images, self.transform = images_uint8, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i], mode="L")), 0


def reference_batches(images_uint8, kind: str):
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    loader = DataLoader(DigitsDataset(images_uint8, tf), batch_size=BATCH, shuffle=True, drop_last=True)
    while True:
        for real, _ in loader:
            yield real.view(BATCH, -1) if kind == "vanilla" else real


def reference_loop(kind: str, images_uint8, steps: int, seed: int = 0):
    G, D, g_optimizer, d_optimizer = build(kind, reference=True, seed=seed)
    loss = nn.BCELoss()
    ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
    batches = reference_batches(images_uint8, kind)
    start = time.perf_counter()
    for _ in range(steps):
        real = next(batches)
        fake = G(noise(kind, BATCH)).view_as(real)
        d_optimizer.zero_grad()
        d_loss = loss(D(real), ones) + loss(D(fake.detach()), zeros)
        d_loss.backward()
        d_optimizer.step()
        g_optimizer.zero_grad()
        g_loss = loss(D(fake), ones)
        g_loss.backward()
        g_optimizer.step()
    return G, time.perf_counter() - start


# ----------------------------------------------------------------------------- (b) the course loop


def course_loop(kind: str, images: torch.Tensor, steps: int, bf16: bool, channels_last: bool = True,
                compiled: bool = False, stock_layers: bool = False, warmup: int = 0, seed: int = 0):
    """Train `steps` steps; returns G, their seconds, and the seconds of `warmup` untimed steps before them
    (with `compiled`, the first steps are where torch.compile spends its compile time)."""
    G, D, g_optimizer, d_optimizer = build(kind, reference=False, seed=seed, stock_layers=stock_layers)
    fmt = torch.channels_last if kind == "dcgan" and channels_last else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    G_run, D_run = (torch.compile(G), torch.compile(D)) if compiled else (G, D)
    data = images.view(len(images), -1) if kind == "vanilla" else images.contiguous(memory_format=fmt)
    batches = utils.Batches(data, batch_size=BATCH, seed=seed)
    loss = nn.BCEWithLogitsLoss()
    targets = torch.cat([torch.ones(BATCH, 1), torch.zeros(BATCH, 1)])
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    joint = not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    it, start, warmup_seconds = iter(batches), time.perf_counter(), 0.0
    for step in range(warmup + steps):
        if step == warmup:
            warmup_seconds, start = time.perf_counter() - start, time.perf_counter()
        try:
            real = next(it)
        except StopIteration:
            it = iter(batches)
            real = next(it)
        with autocast():
            fake = G_run(noise(kind, BATCH)).view_as(real)
            if joint:  # real and fake through D as one batch of 2B: one pass instead of two, the same loss
                d_loss = 2 * loss(D_run(torch.cat([real, fake.detach()])).float(), targets)
            else:  # batch norm must see real and fake batches apart, as in the DCGAN paper
                d_loss = loss(D_run(real).float(), targets[:BATCH]) + loss(D_run(fake.detach()).float(),
                                                                           targets[BATCH:])
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        D.requires_grad_(False)  # the generator step needs gradients through D, not for D's weights
        with autocast():
            g_loss = loss(D_run(fake).float(), targets[:BATCH])
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        D.requires_grad_(True)
    return G, time.perf_counter() - start, warmup_seconds


# ----------------------------------------------------------------------------- measuring


@torch.no_grad()
def samples_of(G: nn.Module, kind: str, n: int = 1000) -> torch.Tensor:
    G.eval()
    g = torch.Generator().manual_seed(1234)
    z = torch.randn(n, Z, generator=g)
    return G(z if kind == "vanilla" else z.view(n, Z, 1, 1)).float().view(n, 1, 28, 28)


def measure(kind: str, steps: int, timing_steps: int, bf16: bool, images, images_uint8) -> dict:
    out = {"kind": kind}
    # speed: a warm-up, then ROUNDS rounds of the same number of timed steps, the two loops taking turns;
    # the median round of each loop counts, so one round slowed by the machine does not decide the ratio
    reference_loop(kind, images_uint8, 5)
    course_loop(kind, images, 5, bf16)
    ref_rates, cmp_rates = [], []
    for _ in range(ROUNDS):
        ref_rates.append(timing_steps / reference_loop(kind, images_uint8, timing_steps)[1])
        cmp_rates.append(timing_steps / course_loop(kind, images, timing_steps, bf16)[1])
    out["reference_steps_per_s"] = statistics.median(ref_rates)
    out["course_steps_per_s"] = statistics.median(cmp_rates)
    out["speedup"] = out["course_steps_per_s"] / out["reference_steps_per_s"]
    out["round_speedups"] = [c / r for r, c in zip(ref_rates, cmp_rates)]
    # quality at equal steps, from each seed of SEEDS
    if steps:
        out["steps"] = steps
        out["reference_runs"] = [evaluate(samples_of(reference_loop(kind, images_uint8, steps, seed)[0], kind))
                                 for seed in SEEDS]
        out["course_runs"] = [evaluate(samples_of(course_loop(kind, images, steps, bf16, seed=seed)[0], kind))
                              for seed in SEEDS]
    return out


def mean_of(runs: list[dict], key: str) -> float:
    return statistics.fmean(m[key] for m in runs)


def standard_error(r: dict, key: str) -> float:
    """The standard error of mean(b) - mean(a) over the seeds' runs: how far the two means move by chance."""
    a, b = [m[key] for m in r["reference_runs"]], [m[key] for m in r["course_runs"]]
    return (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5


def same_quality(r: dict) -> bool:
    """(b)'s means are no worse than (a)'s by more than a tolerance or than two standard errors of their difference,
    whichever is larger: Frechet distance 25% plus half the floor; coverage one class. Seeds of one GAN differ
    by a class or two in coverage, so a fixed tolerance alone would flag chance as a loss."""
    a, b = r["reference_runs"], r["course_runs"]
    fd_slack = max(0.25 * mean_of(a, "fd") + 0.5 * a[0]["floor"], 2 * standard_error(r, "fd"))
    coverage_slack = max(1.0, 2 * standard_error(r, "coverage"))
    return (mean_of(b, "fd") <= mean_of(a, "fd") + fd_slack
            and mean_of(b, "coverage") >= mean_of(a, "coverage") - coverage_slack)


VARIANTS = {  # each course loop with one of its CPU measures taken away, or torch.compile added
    "vanilla": (
        ("course loop (b)", {}),
        ("(b) without bf16 autocast", {"bf16": False}),
        ("(b) with nn.Dropout (bernoulli_ masks) instead of RandDropout", {"stock_layers": True}),
    ),
    "dcgan": (
        ("course loop (b)", {}),
        ("(b) without bf16 autocast", {"bf16": False}),
        ("(b) without channels_last", {"channels_last": False}),
        ("(b) without bf16 and channels_last", {"bf16": False, "channels_last": False}),
        ("(b) with z projected by a transposed convolution instead of ProjectZ", {"stock_layers": True}),
        ("(b) with torch.compile of G and D", {"compiled": True}),
    ),
}


def loop_profile(kind: str, images, images_uint8, bf16: bool, timing_steps: int, rounds: int = ROUNDS) -> dict:
    """Where a course loop's speed comes from and where its time goes.

    Each variant of VARIANTS[kind] against the reference loop, `rounds` rounds taking turns (medians count); the
    first steps of a compiled loop are timed apart, and those of the first round, with an empty compile cache
    (a learner's first run), are torch.compile's compile time. Then the course loop's largest operators and the
    share of its CPU time spent in convolutions, from torch.profiler over `timing_steps` steps."""
    ref_rates, rates, compile_seconds = [], {name: [] for name, _ in VARIANTS[kind]}, None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")  # no cache from earlier runs
    torch._dynamo.reset()
    for _ in range(rounds):
        ref_rates.append(timing_steps / reference_loop(kind, images_uint8, timing_steps)[1])
        for name, change in VARIANTS[kind]:
            options = {"bf16": bf16, **change}
            options["bf16"] = options["bf16"] and bf16
            _, seconds, warmup_seconds = course_loop(kind, images, timing_steps, warmup=3, **options)
            rates[name].append(timing_steps / seconds)
            if change.get("compiled") and compile_seconds is None:  # the first compile, with the empty cache
                compile_seconds = warmup_seconds
    reference = statistics.median(ref_rates)
    out = {"kind": kind, "reference_steps_per_s": reference, "compile_seconds": compile_seconds,
           "variants": {name: {"steps_per_s": statistics.median(r), "speedup": statistics.median(r) / reference}
                        for name, r in rates.items()}}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        course_loop(kind, images, timing_steps, bf16)
    ops = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ops)
    conv = sum(e.self_cpu_time_total for e in ops if "convolution" in e.key)
    out["conv_share"] = conv / total
    out["top_ops"] = [(e.key, e.self_cpu_time_total / total)
                      for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:5]]
    return out


def profile_section(p: dict, timing_steps: int) -> str:
    """One model's part of '## Where the time goes' in results.md."""
    rows = [f"| {name} | {v['steps_per_s']:.1f} | {v['speedup']:.2f}x |" for name, v in p["variants"].items()]
    ops = ", ".join(f"`{key}` {share:.0%}" for key, share in p["top_ops"])
    lines = [
        f"### {p['kind']}", "",
        f"The {p['kind']} course loop with one measure at a time taken away, each against the reference loop "
        f"({p['reference_steps_per_s']:.1f} steps/s) in the same run; medians of rounds of {timing_steps} steps:", "",
        "| loop | steps/s | speed-up over (a) |", "|---|---|---|", f"| reference loop (a) | "
        f"{p['reference_steps_per_s']:.1f} | 1.00x |", *rows, "",
    ]
    if p["compile_seconds"] is not None:
        plain = p["variants"]["course loop (b)"]["steps_per_s"]
        compiled = p["variants"]["(b) with torch.compile of G and D"]["steps_per_s"]
        saved = 1 / plain - 1 / compiled  # seconds per step that compiling saves (negative: it costs)
        pays = (f"it pays for its compile time after {p['compile_seconds'] / saved:,.0f} steps" if saved > 0 else
                "it is slower per step as well, so it never pays for its compile time")
        lines += [f"torch.compile spent {p['compile_seconds']:.0f} s compiling (its first 3 steps, empty cache); then "
                  f"{compiled:.1f} steps/s against {plain:.1f}: {pays}.", ""]
    lines.append(f"torch.profiler over {timing_steps} steps of the course loop: the five largest operators by their "
                 f"own share of its CPU time: {ops}"
                 + (f"; convolutions (forward and backward) take {p['conv_share']:.0%} in all." if p["conv_share"]
                    else "."))
    return "\n".join(lines)


def notebook_times() -> dict[str, float]:
    """Each notebook's stored cpu-profile run time, from the cell timings nbclient records."""
    from datetime import datetime

    times = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        stamps = [c.get("metadata", {}).get("execution", {}) for c in cells]
        starts = [s["iopub.execute_input"] for s in stamps if "iopub.execute_input" in s]
        ends = [s["shell.execute_reply"] for s in stamps if "shell.execute_reply" in s]
        if starts and ends:
            parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
            times[path.stem] = (parse(max(ends)) - parse(min(starts))).total_seconds()
    return times


def target_check(stem: str, seconds: float, info: dict | None) -> tuple[str, str]:
    """A notebook's targets as text, and whether its stored run meets them: 'yes', 'no: <what>' or '-'."""
    target = TARGETS.get(stem)
    if not target:
        return "-", "-"
    info = info or {}
    metrics = info.get("metrics") or {}
    checks = [(f"<= {target['minutes']} min", seconds / 60 <= target["minutes"])]   # (target text, met)
    if "fd_ratio" in target:
        checks.append((f"<= {target['fd_ratio']}x", metrics.get("fd_ratio", float("inf")) <= target["fd_ratio"]))
    if "coverage" in target:
        checks.append((f"{target['coverage']}/10 classes", metrics.get("coverage", 0) >= target["coverage"]))
    if "label_accuracy" in target:
        checks.append((f"label accuracy >= {target['label_accuracy']:.0%}",
                       info.get("label_accuracy", 0.0) >= target["label_accuracy"]))
    missed = [text for text, ok in checks if not ok]
    return ", ".join(text for text, _ in checks), "yes" if not missed else "no: " + ", ".join(missed)


def notebook_section() -> str:
    """The '## Notebooks' table of results.md: each stored run's time and metrics against the course's targets."""
    rows = []
    for stem, sec in notebook_times().items():
        info_path = utils.metrics.PRETRAINED_DIR / stem / "info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
        m = (info or {}).get("metrics") or {}
        ratio = f"{m['fd_ratio']:.1f}x" if "fd_ratio" in m else "-"
        coverage = f"{m['coverage']}/10" if "coverage" in m else "-"
        target, met = target_check(stem, sec, info)
        rows.append(f"| {stem} | {sec / 60:.1f} min ({sec:.0f} s) | {ratio} | {coverage} | {target} | {met} |")
    return ("## Notebooks\n\nEach notebook's stored `cpu`-profile run (the outputs committed with it): its time, from "
            "the cell timings recorded when it was executed, and for a GAN the metrics of the 1,000 samples its "
            "best generator made (`data/pretrained/<notebook>/info.json`: the Frechet-distance ratio to the "
            "real-vs-real floor, and the classes with at least 5% of the samples), against the course's targets:"
            "\n\n| notebook | cpu-profile time | Frechet ratio | classes | target | met |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows))


def nbval_time() -> tuple[float, str]:
    env = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_OFFLINE": "1", "MPLBACKEND": "agg"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-q", "notebooks"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return time.perf_counter() - start, last


def write_results(results: list[dict], profiles: list[dict], nbval: tuple[float, str] | None, bf16: bool, args) -> Path:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python benchmarks/train_speed.py` on {time.strftime('%Y-%m-%d')}: {cpu_description()}, "
        f"{os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 autocast "
        f"{'on (the CPU has bf16 instructions)' if bf16 else 'off (no bf16 instructions)'}, "
        f"python {platform.python_version()}.",
        "",
        "## Training steps per second (batch 100, MNIST 28x28)",
        "",
        "| model | reference loop (a) | course loop (b) | speed-up | FD ratio (a) | FD ratio (b) | classes covered (a) | classes covered (b) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    def runs(r: dict, which: str, key: str, fmt: str) -> str:  # "mean (seed 0, seed 1)"
        ms = r.get(f"{which}_runs")
        return "-" if not ms else f"{mean_of(ms, key):.1f} ({', '.join(f'{m[key]:{fmt}}' for m in ms)})"

    for r in results:
        lines.append(
            f"| {r['kind']} | {r['reference_steps_per_s']:.1f} | {r['course_steps_per_s']:.1f} | {r['speedup']:.2f}x | "
            + " | ".join(runs(r, w, key, fmt) for key, fmt in (("fd_ratio", ".1f"), ("coverage", "d"))
                         for w in ("reference", "course")) + " |"
        )
    lines += ["", f"Steps per second: the median of {ROUNDS} timed rounds of {args.timing_steps} steps per loop, the two "
                  "loops taking turns. The speed-up of each round: " + "; ".join(
                      f"{r['kind']} " + ", ".join(f"{x:.2f}" for x in r["round_speedups"]) for r in results) + "."]
    if results and "steps" in results[0]:
        r = results[0]["reference_runs"][0]
        steps = " and ".join(f"{x['kind']} {x['steps']:,}" for x in results)
        verdicts = "; ".join(f"{x['kind']}: {'the same' if same_quality(x) else 'NOT the same'}" for x in results)
        lines += ["", f"Quality: both loops trained from each of the seeds {', '.join(map(str, SEEDS))} for the same number "
                      f"of steps ({steps}); each quality column gives the mean and, in brackets, each seed's run. The "
                      f"Frechet-distance ratio is to the real-vs-real floor, {r['n_samples']:,} samples against "
                      f"{r['n_real']:,} held-out real digits (utils.evaluate); coverage counts the classes with at "
                      f"least 5% of the samples. Same quality: the means of (b) no worse than those of (a) by more than "
                      f"a tolerance or two standard errors of their difference, whichever is larger (distance: 25% "
                      f"plus half the floor; coverage: one class). Standard errors of the difference of the means: "
                      + "; ".join(f"{x['kind']} distance {standard_error(x, 'fd'):.1f}, coverage "
                                  f"{standard_error(x, 'coverage'):.2f} classes" for x in results)
                      + f". Verdict: {verdicts}."]
    lines += ["", "## Where the time goes", "", *(profile_section(p, args.timing_steps) + "\n" for p in profiles),
              notebook_section()]
    if nbval:
        lines += ["", f"Smoke-profile nbval run of every notebook (`pytest -n 2 notebooks`): {nbval[0]:.0f} s "
                      f"({nbval[1]})."]
    path = ROOT / "benchmarks" / "results.md"
    utils.runtime.atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, no quality check, no results file")
    parser.add_argument("--vanilla-steps", type=int, default=3000,
                        help="training steps of each vanilla loop for the quality comparison")
    parser.add_argument("--dcgan-steps", type=int, default=800,
                        help="training steps of each DCGAN loop for the quality comparison")
    parser.add_argument("--timing-steps", type=int, default=60, help="timed steps per loop and round")
    parser.add_argument("--nbval", action="store_true", help="also time the smoke nbval run of every notebook")
    parser.add_argument("--notebook-times", action="store_true",
                        help="only refresh the notebook table of results.md from the stored runs")
    args = parser.parse_args()
    if args.notebook_times:  # keep the rest of results.md, the nbval line included
        path = ROOT / "benchmarks" / "results.md"
        old = path.read_text() if path.exists() else "# Benchmark results\n\n"
        head, _, tail = old.partition("## Notebooks")
        nbval_line = [line for line in tail.splitlines() if line.startswith("Smoke-profile nbval")]
        text = "\n\n".join([head.rstrip("\n"), notebook_section(), *nbval_line]) + "\n"
        utils.runtime.atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        print(notebook_section())
        return

    bf16 = cpu_has_bf16()
    images, _ = utils.load_mnist("train")
    images_uint8 = ((images[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    timing = 15 if args.quick else args.timing_steps
    results = []
    for kind in ("vanilla", "dcgan"):
        steps = 0 if args.quick else getattr(args, f"{kind}_steps")
        r = measure(kind, steps, timing, bf16, images, images_uint8)
        results.append(r)
        print(f"{kind}: reference {r['reference_steps_per_s']:.1f} steps/s, course {r['course_steps_per_s']:.1f} "
              f"steps/s ({r['speedup']:.2f}x; rounds " + ", ".join(f"{x:.2f}" for x in r["round_speedups"]) + ")",
              flush=True)
        for which in ("reference", "course"):
            for seed, m in zip(SEEDS, r.get(f"{which}_runs", [])):
                print(f"  {which}, seed {seed}, after {steps} steps: {utils.report(m)}", flush=True)
    if not args.quick:
        for r in results:
            print(f"{r['kind']}: course quality {'matches' if same_quality(r) else 'DOES NOT match'} the reference "
                  "at equal steps", flush=True)
        profiles = [loop_profile(kind, images, images_uint8, bf16, timing) for kind in ("vanilla", "dcgan")]
        for p in profiles:
            for name, v in p["variants"].items():
                print(f"{p['kind']} {name}: {v['steps_per_s']:.1f} steps/s ({v['speedup']:.2f}x)", flush=True)
            print(f"{p['kind']}: largest operator {p['top_ops'][0][0]} {p['top_ops'][0][1]:.0%}; convolutions "
                  f"{p['conv_share']:.0%} of the course loop's CPU time", flush=True)
        print(f"dcgan: torch.compile {profiles[1]['compile_seconds']:.0f} s to compile", flush=True)
        nbval = nbval_time() if args.nbval else None
        print(f"results: {write_results(results, profiles, nbval, bf16, args).relative_to(ROOT)}")
    print(f"speedup: vanilla={results[0]['speedup']:.2f} dcgan={results[1]['speedup']:.2f}")


if __name__ == "__main__":
    main()
