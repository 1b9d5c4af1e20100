"""Runtime plumbing: device, seeds, run profile, atomic checkpoints, the NaN guard."""

from __future__ import annotations

import copy
import os
import platform
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent  # the course folder (holds utils/, notebooks/, data/)
PROFILES = ("smoke", "cpu", "gpu")
PITFALLS_NOTEBOOK = "notebooks/09_gan_pitfalls.ipynb"


class CourseError(RuntimeError):
    """An error the learner can act on: the message says what happened and what to do."""


class CheckpointError(CourseError):
    pass


class NonFiniteLossError(CourseError):
    pass


def pick_device(prefer: str | None = None) -> torch.device:
    """The one device a notebook uses: cuda, then mps, then cpu (or `prefer`, or $COURSE_DEVICE)."""
    name = prefer or os.environ.get("COURSE_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); returns a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def get_profile() -> str:
    """The run profile from $COURSE_PROFILE: smoke | cpu | gpu (default gpu with CUDA, else cpu)."""
    value = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if not value:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if value not in PROFILES:
        raise CourseError(
            f"COURSE_PROFILE={value!r} is not a run profile. Use one of {', '.join(PROFILES)} "
            "(smoke: seconds, for CI; cpu: minutes on a laptop; gpu: paper-scale)."
        )
    return value


def want_pretrained() -> bool:
    """True when $COURSE_PRETRAINED asks notebooks to load their shipped generator instead of training."""
    return os.environ.get("COURSE_PRETRAINED", "").strip().lower() in ("1", "true", "yes")


def pick(profile: str, smoke, cpu, gpu):
    """One knob's value for the run profile: pick(PROFILE, smoke=1, cpu=10, gpu=50)."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[profile]


def setup(seed: int = 0, quiet: bool = False) -> torch.device:
    """The notebook setup: pick the device once, seed everything, print the versions, device and profile."""
    device = pick_device()
    seed_everything(seed)
    if not quiet:
        print(
            f"python {platform.python_version()} · torch {torch.__version__} · "
            f"device {device} · profile {get_profile()} · seed {seed}"
        )
    return device


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call write(tmp_path) for a temporary file beside `path`, then rename it into place.

    A crash at any point leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed mid-write
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CourseError(
            f"Cannot write to {path.parent} ({exc.strerror}). Choose a folder you can write to "
            "(for example set the run folder to one in your home directory)."
        ) from exc
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; give the file the usual permissions
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(path, *, step: int, models: dict, optimizers: dict | None = None, **extra) -> Path:
    """Save models, optimizers and the step atomically: {'step', 'models', 'optimizers', 'extra'}."""
    state = {
        "step": int(step),
        "models": {name: m.state_dict() for name, m in models.items()},
        "optimizers": {name: o.state_dict() for name, o in (optimizers or {}).items()},
        "extra": extra,
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def read_checkpoint(path, map_location=None) -> dict:
    """The raw state saved by save_checkpoint: {'step', 'models', 'optimizers', 'extra'}.

    Raises CheckpointError with what to do when the file is missing, corrupt or truncated, or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train first, or check the path.")
    try:
        state = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged file
        raise CheckpointError(
            f"Checkpoint {path} is corrupt or truncated and cannot be read ({type(exc).__name__}). "
            "Delete it and train again, or load an earlier checkpoint."
        ) from None
    if not isinstance(state, dict) or "models" not in state or "step" not in state:
        raise CheckpointError(
            f"{path} is not a course checkpoint (no 'models'/'step'). Save it with utils.save_checkpoint."
        )
    return state


def load_checkpoint(path, *, models: dict, optimizers: dict | None = None, map_location=None,
                    state: dict | None = None) -> dict:
    """Load a checkpoint written by save_checkpoint into `models` (and `optimizers`).

    Returns {'step': int, **extra}. Raises CheckpointError with what to do when the file is
    missing, corrupt or truncated, or was saved from a different model. `state`: the file's contents
    when read_checkpoint already read them, so that the file is not read twice.
    """
    path = Path(path)
    state = read_checkpoint(path, map_location) if state is None else state
    for name in models:
        if name not in state["models"]:
            raise CheckpointError(
                f"Checkpoint {path} has no model named {name!r} (it has {sorted(state['models'])}). "
                "It was saved from a different notebook or model."
            )
    # load_state_dict copies the matching tensors before it reports a mismatch: keep copies so that a
    # checkpoint that does not fit leaves every model and optimizer exactly as it was
    model_backup = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in models.items()}
    optimizers = {name: opt for name, opt in (optimizers or {}).items() if name in state.get("optimizers", {})}
    opt_backup = {name: copy.deepcopy(opt.state_dict()) for name, opt in optimizers.items()}
    try:
        for name, model in models.items():
            try:
                model.load_state_dict(state["models"][name])
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()
                detail = " ".join(line.strip() for line in first[1:3]) or first[0]
                raise CheckpointError(
                    f"Checkpoint {path} was saved from a different model than {name!r}: {detail} "
                    "Build the same architecture (and dataset size) as when it was saved, or train again."
                ) from None
        for name, opt in optimizers.items():
            try:
                opt.load_state_dict(state["optimizers"][name])
            except (ValueError, KeyError, RuntimeError) as exc:
                raise CheckpointError(
                    f"Checkpoint {path} holds optimizer {name!r} for other parameters ({exc}). Create the "
                    "optimizer from the same model as when it was saved, or load the models without it."
                ) from None
    except CheckpointError:
        for name, m in models.items():
            m.load_state_dict(model_backup[name])
        for name, opt in optimizers.items():
            opt.load_state_dict(opt_backup[name])
        raise
    return {"step": state["step"], **state.get("extra", {})}


def check_finite(step: int, **losses) -> None:
    """The NaN guard: stop with a clear message the first step a loss is NaN or infinite."""
    for name, value in losses.items():
        v = float(value.detach()) if torch.is_tensor(value) else float(value)
        if not np.isfinite(v):
            raise NonFiniteLossError(
                f"{name} became {v} at step {step}. Training stopped so the last good checkpoint "
                f"is kept. See {PITFALLS_NOTEBOOK} (NaN) for the causes and the fixes."
            )


