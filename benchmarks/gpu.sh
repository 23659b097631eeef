#!/usr/bin/env bash
# GPU checks for optinv, on one NVIDIA GPU, within 10 minutes:
#   1. the GPU tests through the one harness: every GPU backend of the target registry (kinds cuda
#      = CuPy, torch-cuda, torch-library-cuda, triton) on every committed module (pytest -m gpu if
#      that marker exists, else the tests named after CuPy/CUDA/Triton, e.g. the torch.library
#      operators' test_cuda_*; the CPU stand-ins cuda-host and triton-interpret are left out), then
#      `optinv verify hop_l3_n4 --backends cuda,torch-cuda,torch-library-cuda,triton`,
#   2. the CUDA comparison benchmarks/gpu_bench.py: optinv's CUDA kernel (CuPy, and through
#      torch_invariants) vs hippynn's calc_invariants on PyTorch CUDA, forward and forward+backward,
#      plus the sparse-polynomial peer as a CuPy kernel,
#   3. every GPU target side by side, benchmarks/targets_bench.py --device cuda: CuPy, the torch
#      adapter, the torch.library operators, straight-line torch eager and compiled (Inductor ->
#      Triton), the Triton target, and hippynn eager and compiled on CUDA
#      -> benchmarks/results/*-targets-gpu*.json and .png.
#
# Usage (from anywhere):  bash benchmarks/gpu.sh [--quick]
#   DRY_RUN=1               no GPU: run step 3's wiring on CPU tensors, skip the GPU-only steps
#   PYTHON=/path/to/python  use that interpreter (default: .venv/bin/python if it has torch, else python3)
#
# The GPU machine is expected to have Python 3.11+, NumPy, PyTorch with CUDA and CuPy (cupy-cuda12x).
# Everything else is pure Python and is installed offline from benchmarks/wheels/ when missing:
#   hippynn==0.1.3 (pure Python), sympy + mpmath, networkx, jinja2 + markupsafe, pytest + pluggy +
#   iniconfig + packaging, hypothesis + attrs + sortedcontainers.
# Populate that folder on a machine with network access:  bash benchmarks/fetch_wheels.sh
# (CuPy and PyTorch wheels are hundreds of MB and are not carried; if CuPy is missing, the script
#  still runs hippynn's CUDA path and says that the optinv CUDA kernel was skipped.)
# optinv itself is not installed: a shim folder maps the repository onto the import name `optinv`.
set -uo pipefail

QUICK=""
[[ "${1:-}" == "--quick" ]] && QUICK="--quick"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
T0=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/optinv-gpu.XXXXXX")"

# -- interpreter ------------------------------------------------------------------------------
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x .venv/bin/python ]] && .venv/bin/python -c "import torch" 2>/dev/null; then
  PY=.venv/bin/python
else
  PY=python3
fi
echo "== python: $($PY -c 'import sys; print(sys.executable, sys.version.split()[0])')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "   (nvidia-smi not found)"

# -- pure-Python dependencies, offline from benchmarks/wheels --------------------------------------
missing=()
for mod in numpy sympy networkx jinja2 pytest hypothesis hippynn; do
  $PY -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if (( ${#missing[@]} )); then
  echo "== missing: ${missing[*]}; installing from benchmarks/wheels into $WORK/site"
  if ! ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
    echo "   benchmarks/wheels/ is empty: run benchmarks/fetch_wheels.sh where there is network access"
  else
    $PY -m pip install --quiet --no-index --find-links benchmarks/wheels --target "$WORK/site" \
      $(for m in "${missing[@]}"; do case $m in hippynn) echo "hippynn==0.1.3";; *) echo "$m";; esac; done) \
      || echo "   pip install from wheels failed; continuing with what there is"
  fi
fi
# optinv without installing it: the package-dir mapping of pyproject.toml, as symlinks
mkdir -p "$WORK/shim/optinv"
for f in interface/*; do ln -s "$REPO/$f" "$WORK/shim/optinv/"; done  # optinv itself is interface/
for sub in algebra codegen templates generated; do ln -s "$REPO/$sub" "$WORK/shim/optinv/$sub"; done
export PYTHONPATH="$WORK/shim:$WORK/site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HIPPYNN_USE_CUSTOM_KERNELS=False
$PY - <<'EOF'
import importlib
for m in ("numpy", "torch", "cupy", "hippynn", "optinv.algebra", "optinv.codegen"):
    try:
        mod = importlib.import_module(m)
        extra = ""
        if m == "torch":
            extra = f" cuda={mod.version.cuda} available={mod.cuda.is_available()}"
        if m == "cupy":
            extra = f" devices={mod.cuda.runtime.getDeviceCount()}"
        print(f"   {m:16s} {getattr(mod, '__version__', '')}{extra}")
    except Exception as exc:
        print(f"   {m:16s} NOT AVAILABLE: {type(exc).__name__}: {exc}")
EOF

status=0
if [[ -n "${DRY_RUN:-}" ]]; then
  echo "== DRY_RUN: the GPU targets' benchmark wiring on CPU tensors only"
  timeout 500 $PY benchmarks/targets_bench.py --device cuda --dry-run --quick --n 2000 --pairs "3,4" \
    --dtypes float64 --out "$WORK/targets-gpu-dry.json" || { rc=$?; echo "   targets_bench dry run: exit $rc"; status=1; }
  echo "== done in $((SECONDS - T0)) s (status $status)"
  rm -rf "$WORK"
  exit $status
fi

# -- 1. GPU tests ---------------------------------------------------------------------------------
echo "== GPU tests"
if $PY -m pytest --markers 2>/dev/null | grep -q "@pytest.mark.gpu"; then
  SEL=(-m gpu)
else
  SEL=(-k "(cupy or cuda or gpu or triton) and not host and not interpret and not flex")
fi
timeout 200 $PY -m pytest -q -p no:cacheprovider -rs "${SEL[@]}" tests/ || { rc=$?; echo "   GPU tests: exit $rc"; status=1; }
timeout 60 $PY -c "import sys; from optinv.cli import main; sys.exit(main(sys.argv[1:]))" verify hop_l3_n4 \
  --backends cuda,torch-cuda,torch-library-cuda,triton --max-examples 20 || { rc=$?; echo "   verify on the GPU: exit $rc"; status=1; }
echo "   (elapsed $((SECONDS - T0)) s)"

# -- 2. CUDA comparison -------------------------------------------------------------------------------
echo "== CUDA comparison"
left=$(( 400 - (SECONDS - T0) ))
if (( left < 60 )); then
  echo "   little time left: running the quick comparison"; QUICK="--quick"; left=60
fi
timeout "$left" $PY benchmarks/gpu_bench.py --quick || { rc=$?; echo "   gpu_bench: exit $rc"; status=1; }

# -- 3. every GPU target side by side -------------------------------------------------------------------
echo "== GPU targets (CuPy, torch adapter, torch source eager/compiled, Triton, hippynn eager/compiled)"
left=$(( 590 - (SECONDS - T0) ))
if (( left < 60 )); then
  echo "   under a minute left of the 10-minute budget: skipped"
else
  timeout "$left" $PY benchmarks/targets_bench.py --device cuda --quick || { rc=$?; echo "   targets_bench: exit $rc"; status=1; }
fi
echo "== done in $((SECONDS - T0)) s (status $status); results in benchmarks/results/*-gpu*.json and *-targets-gpu*.png"
rm -rf "$WORK"
exit $status
