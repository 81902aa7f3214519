#!/usr/bin/env bash
# Create .venv and install Torah Study with its test tools and the local model
# runtime, then build the web app. llama-cpp-python compiles from source
# (about ten minutes on two cores); set TORAH_STUDY_SKIP_LOCAL_LLM=1 to skip it
# and answer from sources. The web app needs Node.js 20 or newer with npm.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# A native build of llama.cpp uses every instruction set the build machine
# reports, AMX included. That build crashed with a segmentation fault on a
# machine that reports AMX, and the portable build does not crash there.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF"}
extras="dev"
if [ "${TORAH_STUDY_SKIP_LOCAL_LLM:-0}" != "1" ]; then
    extras="dev,local-llm"
fi
echo "Installing torah-study[$extras] into .venv" >&2
.venv/bin/python -m pip install --quiet -e ".[$extras]"

if command -v npm >/dev/null 2>&1; then
    scripts/build-web.sh
else
    echo "npm not found: the web app is not built; the API still runs. Install Node.js 20 or newer and run scripts/build-web.sh." >&2
fi
