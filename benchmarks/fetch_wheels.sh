#!/usr/bin/env bash
# Download the pure-Python wheels that benchmarks/gpu.sh installs offline on a GPU machine
# (which may have no network).  Run where pip can reach the package index.
set -euo pipefail
DEST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/wheels"
mkdir -p "$DEST"
PY="${PYTHON:-python3}"
$PY -m pip download --dest "$DEST" --no-deps --only-binary=:all: hippynn==0.1.3
$PY -m pip download --dest "$DEST" --only-binary=:all: \
  "sympy>=1.12" "networkx>=3.0" "jinja2>=3.1" "pytest>=7" "hypothesis>=6.80"
ls -l "$DEST"
