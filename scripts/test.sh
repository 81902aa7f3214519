#!/usr/bin/env bash
# Install everything the tests need, then run them. Arguments go to pytest.
#
# The tests read a Sefaria-Export folder from TORAH_STUDY_EXPORT_DIR and build
# a small index from it; the local-model test fetches SmolLM2-135M weights.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
models_dir=${TORAH_STUDY_TEST_MODELS_DIR:-$HOME/.cache/torah-study/models}
if .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    .venv/bin/torah-study --data-dir "$(dirname "$models_dir")" models smollm2-135m \
        || echo "SmolLM2 weights unavailable; the local-model test will be skipped." >&2
fi
exec .venv/bin/python -m pytest "$@"
