"""Plumbing shared by the Amazing GANs notebooks: data, logging, images, checkpoints, metrics.

Models, losses and training loops live in the notebooks that teach them, never here.
"""

from .data import Batches, DatasetError, load_dataset, load_mnist
from .exercises import ExerciseBlank, exercise
from .imagefolder import FolderBatches
from .images import animate, make_grid, save_gif, save_grid, show_images
from .logger import Logger
from .metrics import (
                      BestKeeper,
                      evaluate,
                      load_classifier,
                      load_samples,
                      pretrained_path,
                      rank_correlation,
                      report,
                      save_samples,
                      ship_run,
)
from .resume import TrainingRun, want_fresh
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

__all__ = [
    "animate", "Batches", "BestKeeper", "CheckpointError", "CourseError", "DatasetError", "ExerciseBlank", "FolderBatches", "Logger", "NonFiniteLossError",
    "check_finite", "evaluate", "exercise", "get_profile", "load_checkpoint", "load_classifier", "load_dataset",
    "load_mnist", "load_samples", "make_grid", "pick", "pick_device", "pretrained_path", "rank_correlation", "report",
    "save_checkpoint", "save_gif", "save_grid", "save_samples", "seed_everything", "setup", "ship_run", "show_images",
    "TrainingRun", "want_fresh", "want_pretrained",
]
