#!/usr/bin/env bash
# Create the side-by-side benchmark venv for the `sbi` package and sbibm's tasks.
#
#   bash bench/make_sbi_venv.sh          # idempotent: does nothing if the venv already works
#   FORCE=1 bash bench/make_sbi_venv.sh  # rebuild from scratch
#
# The venv lives at <repo>/.venv-bench-sbi (kept apart from physgen's own .venv, which must
# not depend on sbi or sbibm). Order matters:
#   1. torch==2.13.0 first: pip takes the CPU build from the local wheel directory; any later
#      requirement on "torch" is then already satisfied (and a constraint file pins it, so no
#      package can pull in a multi-GB CUDA build).
#   2. sbi 0.27.* (falls back to the newest 0.2x on the index and says so).
#   3. sbibm==1.1.0 --no-deps: its metadata pins sbi<0.22, elfi, pyabc, diffeqtorch, ... which
#      we do not want; we add only what its task simulators import (pyro-ppl, pandas) by hand.
#   4. numpy / scikit-learn (C2ST) - normally already there through sbi.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SBI_BENCH_VENV:-$ROOT/.venv-bench-sbi}"
PY="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"

check() {
  "$VENV/bin/python" - <<'EOF'
import sys
import torch, sbi, sbibm, sklearn, numpy
import sbibm.tasks  # noqa: F401
assert torch.version.cuda is None, f"CUDA torch build found: {torch.version.cuda}"
assert torch.__version__.startswith("2.13.0"), torch.__version__
for name in ("two_moons", "gaussian_linear", "gaussian_mixture", "slcp", "bernoulli_glm"):
    sbibm.get_task(name)
print(f"ok: python {sys.version.split()[0]}, torch {torch.__version__} (cuda={torch.version.cuda}), "
      f"sbi {sbi.__version__}, sbibm {getattr(sbibm, '__version__', '1.1.0')}, "
      f"numpy {numpy.__version__}, scikit-learn {sklearn.__version__}")
EOF
}

if [[ "${FORCE:-0}" != "1" && -x "$VENV/bin/python" ]] && check 2>/dev/null; then
  echo "bench venv already works: $VENV"
  exit 0
fi

start=$(date +%s)
if [[ "${FORCE:-0}" == "1" ]]; then rm -rf "$VENV"; fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

# Pin torch for every install below, so no dependency resolution can swap it for a CUDA wheel.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

echo "== 1/4 torch==$TORCH_VERSION (CPU wheel from local disk)"
"${PIP[@]}" "torch==$TORCH_VERSION"
"$VENV/bin/python" -c "import torch; assert torch.version.cuda is None, torch.version.cuda; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== 2/4 sbi 0.27.*"
if ! "${PIP[@]}" -c "$CONSTRAINTS" "sbi==0.27.*"; then
  echo "sbi 0.27.* not installable; falling back to the newest sbi>=0.20,<0.30" >&2
  "${PIP[@]}" -c "$CONSTRAINTS" "sbi>=0.20,<0.30"
fi

echo "== 3/4 sbibm==1.1.0 --no-deps + what its simulators import"
"${PIP[@]}" --no-deps "sbibm==1.1.0"
# sbibm/__init__ -> tasks -> pyro (priors/simulators), pandas (csv files of the references);
# the rest of its pinned deps (elfi, pyabc, pyabcranger, diffeqtorch, deneb, old sbi) are only
# used by its algorithms or by lotka_volterra / sir, which we do not run through sbibm.
"${PIP[@]}" -c "$CONSTRAINTS" pyro-ppl pandas

echo "== 4/4 numpy, scikit-learn"
"${PIP[@]}" -c "$CONSTRAINTS" numpy scikit-learn

check
echo "bench venv ready in $(( $(date +%s) - start )) s: $VENV"
