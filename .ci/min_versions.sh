#!/usr/bin/env bash
# The versions we claim are the versions we test: every `>=` floor of pyproject.toml's dependencies and of
# the [app] extra, installed exactly (torch's CPU wheel first), must pass the unit tests (the slow,
# multi-process ones run in .ci/run on the newest versions).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${MIN_VERSIONS_VENV:-/tmp/lightning-clr-min-versions}"

python3 -m venv --clear "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
floors="$venv/floors.txt"
python - > "$floors" <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["app"]:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([^,;\s]+)", requirement.strip()).groups()
    print(f"{name}=={floor}")
PY
# tensorboard before 2.21 imports pkg_resources, which setuptools 81 removed: its floor runs with the
# setuptools of its day
echo "setuptools<81" >> "$floors"
echo "minimum versions:" $(cat "$floors")
python -m pip install -q "$(grep '^torch==' "$floors")"  # the CPU wheel, before anything can pull a CUDA one
python -m pip install -q -c "$floors" -e ".[dev]"
python -m pip check
python -m pip list 2>/dev/null | grep -iE "^(torch|lightning|hydra-core|omegaconf|torchmetrics|numpy) "
python -m pytest -q -p no:cacheprovider -m "not slow and not browser"
