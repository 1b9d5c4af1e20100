"""Solutions to the exercises of notebook 00 · Start here. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports it; here for readers and the linter


# %% Exercise 1
def grid_width(n_images, nrow, size=28, padding=2):
    """Width in pixels of the grid utils.save_grid makes from n_images square images, nrow to a row."""
    across = min(n_images, nrow)  # a short last row does not widen the grid; fewer images than nrow narrow it
    return padding + across * (size + padding)


# %% Exercise 2
def hardest_digit(predicted, labels):
    """The true digit (an int, 0-9) with the most mistakes; predicted and labels are (N,) int64 tensors."""
    mistakes = torch.bincount(labels[predicted != labels], minlength=10)  # (10,) mistakes per true digit
    return int(mistakes.argmax())
