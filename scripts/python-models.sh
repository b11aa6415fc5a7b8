#!/usr/bin/env bash
# Makes a virtual environment with Twisted and gevent, for the optional py-twisted and
# py-gevent models, and prints the comparison that runs them.
#
#   scripts/python-models.sh [VENV_DIR]      # default: .venv-python (ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-python}"
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "python-models: $python is not found; set PYTHON to a Python 3.9 or later" >&2
    exit 1
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check twisted gevent
"$venv/bin/python" -c 'import twisted, gevent; print("python-models: Twisted", twisted.__version__, "and gevent", gevent.__version__, "in '"$venv"'")'
echo "run: cargo run --release -- compare --python=$venv/bin/python"
