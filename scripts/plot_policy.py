"""Preview the LR (and momentum) schedule a training config will use, before training.

    python scripts/plot_policy.py                                    # the defaults of scripts/train.py
    python scripts/plot_policy.py policy=exp_range policy.step_size=200 trainer.max_epochs=40
    python scripts/plot_policy.py policy=one_cycle policy.cycle_momentum=true dataset=digits

Composes the same Hydra config as scripts/train.py (a step size in epochs is resolved from the data set's
batches per epoch) and writes policy.png into the Hydra run dir.
"""

from lightning_clr.app.commands import plot_policy

if __name__ == "__main__":
    plot_policy()
