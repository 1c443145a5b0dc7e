#!/usr/bin/env bash
# Set up (see setup.sh) and run the main job, `vla demo`. Extra arguments are hydra overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/vla demo "$@"
