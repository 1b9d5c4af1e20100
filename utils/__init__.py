"""Plumbing shared by the Amazing GANs notebooks: data, logging, images, checkpoints, runs, metrics.

Models, losses and training loops live in the notebooks that teach them, never here.
"""

from .cells import notebook_cells
from .data import Batches, DatasetError, load_dataset, load_mnist
from .exercises import ExerciseBlank, exercise
from .imagefolder import FolderBatches
from .images import animate, make_grid, save_gif, save_grid, show_images
from .logger import Logger
from .metrics import evaluate, load_classifier, rank_correlation, report
from .resume import TrainingRun, want_fresh
from .runs import (
                   EVAL_SEED,
                   N_SAMPLES,
                   BestKeeper,
                   eval_noise,
                   load_pretrained,
                   load_samples,
                   run_dir,
                   save_samples,
                   ship_run,
)
from .runtime import (
                      CheckpointError,
                      CourseError,
                      NonFiniteLossError,
                      check_finite,
                      get_profile,
                      load_checkpoint,
                      pick,
                      pick_device,
                      save_checkpoint,
                      seed_everything,
                      setup,
                      want_pretrained,
)
from .training import autocast, bf16_units, linear_decay, lr_decay, plot_curves, sample, smooth

__all__ = [
    "animate", "autocast", "Batches", "BestKeeper", "bf16_units", "CheckpointError", "CourseError", "DatasetError",
    "EVAL_SEED", "eval_noise", "ExerciseBlank", "FolderBatches", "Logger", "N_SAMPLES", "NonFiniteLossError",
    "check_finite", "evaluate", "exercise", "get_profile", "linear_decay", "load_checkpoint", "load_classifier",
    "load_dataset", "load_mnist", "load_pretrained", "load_samples", "lr_decay", "make_grid", "notebook_cells", "pick",
    "pick_device", "plot_curves", "rank_correlation", "report", "run_dir", "sample", "save_checkpoint", "save_gif",
    "save_grid", "save_samples", "seed_everything", "setup", "ship_run", "show_images", "smooth", "TrainingRun", "want_fresh",
    "want_pretrained",
]
