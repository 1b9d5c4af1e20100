"""What the benchmark scripts share: the machine's description and writing one section of results.md."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import utils  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.md"


def machine() -> str:
    """The CPU, its bf16 units, the cores and threads, and the versions, in one sentence."""
    model = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), model)
    units = "bf16 units (AMX or AVX-512 BF16)" if utils.bf16_units() else "no bf16 units"
    return (f"{model} ({units}), {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}, "
            f"python {platform.python_version()}")


def write_section(heading: str, body: str, before: str | None = None) -> Path:
    """Replace the section `## heading` of results.md (up to the next `## `) with `body`; a new section goes
    before the section `## before` (or at the end)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"## {heading}\n\n{body.strip()}\n\n"
    parts = text.split("\n## ")
    head, sections = parts[0], ["## " + p for p in parts[1:]]
    names = [s.splitlines()[0][3:].strip() for s in sections]
    if heading in names:
        sections[names.index(heading)] = block
    elif before in names:
        sections.insert(names.index(before), block)
    else:
        sections.append(block)
    new = head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in sections)
    utils.runtime.atomic_write(RESULTS, lambda tmp: Path(tmp).write_text(new))
    return RESULTS
