"""Train a classifier with a cyclical learning rate.

python scripts/train.py                                  # MNIST-1D, triangular policy
python scripts/train.py policy=exp_range policy.step_size=200
python scripts/train.py -m policy.step_size=2,4,8        # a sweep, one folder per job
"""

from lightning_clr.app.commands import train

if __name__ == "__main__":
    train()
