"""Solutions to the exercises of notebook 11 · Conditional GAN. Try each exercise before reading its answer."""

import torch  # the notebook's setup cell imports these; repeated here so that this file reads on its own
import torch.nn.functional as F


# %% Exercise 1
def one_hot_input(z, y, n_classes=10):
    """The generator's input [z; one-hot(y)].

    z: (B, z_dim) float noise; y: (B,) integer labels in [0, n_classes).
    Returns (B, z_dim + n_classes), with the same dtype as z: z first, then the one-hot code of y.
    """
    code = F.one_hot(y, n_classes).to(z.dtype)                         # (B, n_classes)
    return torch.cat([z, code], dim=1)                                 # (B, z_dim + n_classes)


# %% Exercise 2
def recall_and_precision(confusion):
    """Per-class recall and precision from a confusion matrix.

    confusion: (C, C) counts (any integer or float dtype); confusion[i, j] = samples requested as i and read as j.
    Returns (recall, precision), two float tensors of shape (C,).
    """
    m = confusion.double() if confusion.dtype == torch.float64 else confusion.float()
    correct = m.diagonal()                                             # (C,) requested k and read as k
    return correct / m.sum(1), correct / m.sum(0)                      # rows: requested; columns: read as


# %% Exercise 3
def matching_aware_d_loss(D, real, fake, y, y_wrong):
    """The discriminator loss of a matching-aware conditional GAN (GAN-CLS, Reed et al., 2016), for labels.

    D: a function (images, labels) -> (B,) logits; real, fake: (B, 1, 28, 28) images (fake from G, not detached);
    y: (B,) the labels of the real images, which fake was also drawn for; y_wrong: (B,) labels that do not match real.
    Returns a scalar tensor: BCE(D(real, y), 1) + (BCE(D(real, y_wrong), 0) + BCE(D(fake, y), 0)) / 2.
    """
    real_logits = D(real, y)                                           # real image, right label -> 1
    wrong_logits = D(real, y_wrong)                                    # real image, wrong label -> 0
    fake_logits = D(fake.detach(), y)                                  # generated image, its label -> 0
    bce = F.binary_cross_entropy_with_logits
    return (bce(real_logits, torch.ones_like(real_logits))
            + (bce(wrong_logits, torch.zeros_like(wrong_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))) / 2)
