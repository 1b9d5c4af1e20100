"""A tiny GAN training run built on the course's plumbing, for the kill-and-resume test.

python tests/tiny_train.py RUN_DIR EPOCHS [--slow-save] [--poison-at STEP]

It resumes from RUN_DIR/checkpoint.pt when one exists (models, optimizers, epoch and the random
state), logs every batch, checkpoints once an epoch, and prints SAVING e / EPOCH_DONE e so that a
test can kill it at known points. --slow-save writes each checkpoint in two halves with a pause
between them, so a kill can land in the middle of a write. --poison-at STEP feeds a batch holding
a NaN at that global step, so the NaN guard must stop the run there.
"""

import io
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import utils  # noqa: E402

BATCH, N_IMAGES, Z = 50, 200, 8


def main(run_dir: Path, epochs: int, slow_save: bool, poison_at: int | None) -> None:
    if slow_save:
        real_save = torch.save

        def halting_save(obj, f, *args, **kwargs):
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            with open(f, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                print("HALF_WRITTEN", flush=True)
                time.sleep(3)
                fh.write(data[len(data) // 2:])

        torch.save = halting_save

    utils.seed_everything(0)
    images, _ = utils.load_mnist("train")
    G = nn.Sequential(nn.Linear(Z, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 1))
    g_optimizer = torch.optim.Adam(G.parameters(), lr=1e-3)
    d_optimizer = torch.optim.Adam(D.parameters(), lr=1e-3)
    batches = utils.Batches(images[:N_IMAGES].view(-1, 784), batch_size=BATCH, seed=0)
    num_batches = len(batches)

    start_epoch, resume_step = 0, None
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        state = utils.load_checkpoint(checkpoint, models={"generator": G, "discriminator": D},
                                      optimizers={"g_optimizer": g_optimizer, "d_optimizer": d_optimizer})
        torch.set_rng_state(state["rng"])
        start_epoch = state["step"] + 1
        resume_step = start_epoch * num_batches - 1
        print(f"RESUMED {start_epoch}", flush=True)
    logger = utils.Logger("tiny", "mnist", root=run_dir, resume_step=resume_step, tensorboard=False)
    batches.set_epoch(start_epoch)
    loss = nn.BCEWithLogitsLoss()

    for epoch in range(start_epoch, epochs):
        for n_batch, real in enumerate(batches):
            if logger.step(epoch, n_batch, num_batches) == poison_at:
                real = real.clone()
                real[0, 0] = float("nan")
            fake = G(torch.randn(BATCH, Z))
            d_loss = loss(D(real), torch.ones(BATCH, 1)) + loss(D(fake.detach()), torch.zeros(BATCH, 1))
            d_optimizer.zero_grad()
            d_loss.backward()
            d_optimizer.step()
            g_loss = loss(D(fake), torch.ones(BATCH, 1))
            g_optimizer.zero_grad()
            g_loss.backward()
            g_optimizer.step()
            utils.check_finite(logger.step(epoch, n_batch, num_batches), d_loss=d_loss, g_loss=g_loss)
            logger.log(d_loss, g_loss, epoch, n_batch, num_batches)
            time.sleep(0.05)
        print(f"SAVING {epoch}", flush=True)
        logger.save_models(G, D, epoch, g_optimizer, d_optimizer, rng=torch.get_rng_state())
        print(f"EPOCH_DONE {epoch}", flush=True)
    logger.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    poison = int(args[args.index("--poison-at") + 1]) if "--poison-at" in args else None
    main(Path(args[0]), int(args[1]), "--slow-save" in args, poison)
