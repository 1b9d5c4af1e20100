"""Each notebook's stored cpu-profile run against the course's targets: its time and, for a GAN, its metrics.

    python benchmarks/notebook_times.py     # prints the table and writes it to results.md, "## Notebooks"

The time comes from the cell timings recorded when the stored outputs were made; the metrics from the shipped
run's info.json (data/pretrained/<notebook>/), the 1,000 samples of its best generator.
"""

from __future__ import annotations

import json
from datetime import datetime

from report import ROOT, utils, write_section

# Targets of each notebook's stored cpu-profile run: minutes and, for a GAN, the Frechet-distance ratio to the
# real-vs-real floor, the classes with at least 5% of the samples and, for the conditional GAN, label accuracy.
TARGETS = {
    "03_autoencoders": {"minutes": 7},
    "04_vanilla_gan": {"minutes": 3, "fd_ratio": 12, "coverage": 10},
    "05_dcgan": {"minutes": 3, "fd_ratio": 6, "coverage": 10},
    "06_ebgan": {"minutes": 3, "fd_ratio": 12, "coverage": 10},
    "07_began": {"minutes": 3, "fd_ratio": 12, "coverage": 10},
    "08_wgan": {"minutes": 3, "fd_ratio": 6, "coverage": 10},
    "09_gan_pitfalls": {"minutes": 3},
    "10_evaluating_gans": {"minutes": 7},
    "11_conditional_gan": {"minutes": 3, "label_accuracy": 0.9},
    "12_bigan": {"minutes": 7, "fd_ratio": 12, "coverage": 10},
    "13_scaling_up": {"minutes": 3},
    "all": {"minutes": 20},
}


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def notebook_times() -> dict[str, float]:
    """Seconds of each notebook's stored run, from its first cell's start to its last cell's end."""
    times = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        stamps = [c.get("metadata", {}).get("execution", {}) for c in json.loads(path.read_text())["cells"]]
        starts = [s["iopub.execute_input"] for s in stamps if "iopub.execute_input" in s]
        ends = [s["shell.execute_reply"] for s in stamps if "shell.execute_reply" in s]
        if starts and ends:
            times[path.stem] = (_time(max(ends)) - _time(min(starts))).total_seconds()
    return times


def target_check(stem: str, seconds: float, info: dict | None) -> tuple[str, str]:
    """A notebook's targets as text, and whether its stored run meets them: 'yes', 'no: <what>' or '-'."""
    target = TARGETS.get(stem)
    if not target:
        return "-", "-"
    info = info or {}
    metrics = info.get("metrics") or {}
    checks = [(f"<= {target['minutes']} min", seconds / 60 <= target["minutes"])]
    if "fd_ratio" in target:
        checks.append((f"<= {target['fd_ratio']}x", metrics.get("fd_ratio", float("inf")) <= target["fd_ratio"]))
    if "coverage" in target:
        checks.append((f"{target['coverage']}/10 classes", metrics.get("coverage", 0) >= target["coverage"]))
    if "label_accuracy" in target:
        checks.append((f"label accuracy >= {target['label_accuracy']:.0%}",
                       info.get("label_accuracy", 0.0) >= target["label_accuracy"]))
    missed = [text for text, ok in checks if not ok]
    return ", ".join(text for text, _ in checks), "yes" if not missed else "no: " + ", ".join(missed)


def table() -> str:
    rows, total = [], 0.0
    for stem, sec in notebook_times().items():
        info_path = utils.runs.PRETRAINED_DIR / stem / "info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
        m = (info or {}).get("metrics") or {}
        ratio = f"{m['fd_ratio']:.1f}x" if "fd_ratio" in m else "-"
        coverage = f"{m['coverage']}/10" if "coverage" in m else "-"
        target, met = target_check(stem, sec, info)
        rows.append(f"| {stem} | {sec / 60:.1f} min ({sec:.0f} s) | {ratio} | {coverage} | {target} | {met} |")
        total += sec
    target, met = target_check("all", total, None)
    rows.append(f"| all | {total / 60:.1f} min ({total:.0f} s) | - | - | {target} | {met} |")
    return ("Each notebook's stored `cpu`-profile run (the outputs committed with it): its time, from the cell "
            "timings recorded when it was executed, and for a GAN the metrics of the 1,000 samples its best "
            "generator made (`data/pretrained/<notebook>/info.json`: the Frechet-distance ratio to the real-vs-real "
            "floor, and the classes with at least 5% of the samples), against the course's targets:\n\n"
            "| notebook | cpu-profile time | Frechet ratio | classes | target | met |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows))


if __name__ == "__main__":
    body = table()
    print(body)
    print(f"results: {write_section('Notebooks', body).relative_to(ROOT)}")
