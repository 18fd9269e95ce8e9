#!/usr/bin/env bash
# Create the side-by-side benchmark venv for the reference OmniFold package (PyPI `omnifold`).
#
#   bash bench/make_omnifold_venv.sh          # idempotent: does nothing if the venv already works
#   FORCE=1 bash bench/make_omnifold_venv.sh  # rebuild from scratch
#
# The venv lives at <repo>/.venv-bench-omnifold, apart from physgen's own .venv: the package
# needs TensorFlow (>= 2.15; about 2 GB), which must never enter physgen's environment.
# The plain `tensorflow` wheel runs on CPU and pulls no CUDA libraries (`tensorflow[and-cuda]`
# would). omnifold 0.1.36 with Keras 3 needs one workaround at run time (its custom loss is not
# registered for `clone_model`); bench/omnifold_peer.py applies it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OMNIFOLD_BENCH_VENV:-$ROOT/.venv-bench-omnifold}"
PY="${PYTHON:-python3}"

check() {
  "$VENV/bin/python" - <<'PYEOF'
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy, h5py, tensorflow as tf, omnifold
from importlib.metadata import version
assert not tf.config.list_physical_devices("GPU") or True
print(f"ok: python {sys.version.split()[0]}, omnifold {version('omnifold')}, "
      f"tensorflow {tf.__version__}, keras {version('keras')}, numpy {numpy.__version__}")
PYEOF
}

if [[ "${FORCE:-0}" != "1" && -x "$VENV/bin/python" ]] && check 2>/dev/null; then
  echo "bench venv already works: $VENV"
  exit 0
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "omnifold==0.1.36" tensorflow h5py
check
