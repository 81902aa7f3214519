#!/usr/bin/env bash
# Set up, ingest the library and serve it: the one command for a fresh machine.
#
# The library comes from TORAH_STUDY_EXPORT_DIR when it points at a
# Sefaria-Export folder; otherwise the default books are downloaded from
# Sefaria's public export into data/export.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
export TORAH_STUDY_DATA_DIR=${TORAH_STUDY_DATA_DIR:-$PWD/data}
cli=.venv/bin/torah-study

if [ -z "${TORAH_STUDY_EXPORT_DIR:-}" ]; then
    export TORAH_STUDY_EXPORT_DIR="$TORAH_STUDY_DATA_DIR/export"
    "$cli" library fetch Torah Psalms "Pirkei Avot" Mishnah "Rashi on Genesis" \
        --dest "$TORAH_STUDY_EXPORT_DIR" || echo "Some books could not be fetched; continuing with what arrived." >&2
fi

if .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    "$cli" models qwen2.5-0.5b || echo "Model weights unavailable; answers will list sources only." >&2
fi

"$cli" ingest --export-dir "$TORAH_STUDY_EXPORT_DIR"
"$cli" db upgrade
exec "$cli" serve --host "${TORAH_STUDY_HOST:-127.0.0.1}" --port "${TORAH_STUDY_PORT:-8000}"
