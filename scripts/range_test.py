"""Find CLR bounds with an LR range test (Smith 2017, Sec. 3.3) for any configured model and data set.

    python scripts/range_test.py                              # MNIST-1D, the default model and optimizer
    python scripts/range_test.py dataset=digits model=mlp optimizer=adam range_test.monitor=val_acc

Writes range_test.png, range_test.csv and range_test_bounds.yaml into the Hydra run dir and prints the
overrides to pass to scripts/train.py.
"""

from lightning_clr.app.commands import range_test

if __name__ == "__main__":
    range_test()
