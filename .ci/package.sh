#!/usr/bin/env bash
# The package as a user gets it: build the sdist and wheel and check them, then install the wheel into two
# fresh venvs outside the repository. With [app], `clr-train` runs from an empty directory and writes its
# TensorBoard events under ./outputs/; without extras, the library trains with CyclicLR and runs the range
# test with neither Hydra nor TensorBoard installed. Needs `build` and `twine` (the [dev] extra).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d /tmp/lightning-clr-package.XXXXXX)"
trap 'rm -rf "$work"' EXIT

python -m build --outdir "$work/dist" . > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
python -m twine check --strict "$work"/dist/*
wheel="$(ls "$work"/dist/*.whl)"
python - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = {"lightning_clr/py.typed", "lightning_clr/conf/config.yaml", "lightning_clr/conf/range_test/default.yaml"}
missing = needed - names
assert not missing, f"the wheel lacks {sorted(missing)}"
assert not any(name.startswith(("tests/", "scripts/", "conf/")) for name in names), "stray top-level files"
print(f"wheel: {sys.argv[1].rsplit('/', 1)[1]}, {len(names)} files")
PY
ls -l "$work"/dist

# --- the app: [app] extra, console command from an empty directory ---------------------------------------
python3 -m venv "$work/app"
"$work/app/bin/python" -m pip install -q --upgrade pip
"$work/app/bin/python" -m pip install -q "torch==2.13.0"  # the CPU wheel first: nothing may pull a CUDA one
start=$SECONDS
"$work/app/bin/python" -m pip install -q "$wheel[app]"
echo "install of [app]: $((SECONDS - start)) s"
mkdir "$work/run" && cd "$work/run"
"$work/app/bin/clr-train" trainer.max_epochs=1 trainer.enable_progress_bar=false
events="$(find outputs -name 'events.out.tfevents.*' | head -n 1)"
[ -n "$events" ] || { echo "clr-train wrote no TensorBoard events under ./outputs/"; exit 1; }
[ -d data/mnist1d ] || { echo "clr-train wrote no data under ./data/"; exit 1; }
echo "clr-train: $events"
"$work/app/bin/clr-plot-policy" > /dev/null
find outputs -name policy.png | grep -q . || { echo "clr-plot-policy wrote no policy.png"; exit 1; }
cd "$repo"

# --- the library alone: no extras ---------------------------------------------------------------------------
python3 -m venv "$work/core"
"$work/core/bin/python" -m pip install -q --upgrade pip
"$work/core/bin/python" -m pip install -q "torch==2.13.0"
start=$SECONDS
"$work/core/bin/python" -m pip install -q "$wheel"
echo "install of the core: $((SECONDS - start)) s"
cd "$work"
"$work/core/bin/python" - <<'PY'
import importlib.util, sys

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr import CLRTuner, CyclicLR, Triangular


class Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


torch.manual_seed(0)
x = torch.randn(256, 8)
loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32)
options = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=2)
result = CLRTuner(L.Trainer(**options)).range_test(Regression(), loader, num_steps=20)
bounds = result.suggest()
clr = CyclicLR(Triangular(bounds.base_lr, bounds.max_lr, step_size=8))
trainer = L.Trainer(callbacks=[clr], **options)
trainer.fit(Regression(), loader)
assert trainer.global_step == 16 and clr.last_step["lr"] == clr.policy(15)  # the LR the last step used
for name in ("hydra", "omegaconf", "tensorboard", "mnist1d", "sklearn"):
    assert importlib.util.find_spec(name) is None, f"{name} is installed without the [app] extra"
print(f"core: range test suggests {bounds}; trained 16 steps with CyclicLR")
PY
cd "$repo"
