#!/usr/bin/env bash
# Build the web app (web/) into web/out, which the service serves at "/".
# Needs Node.js 20 or newer with npm. A build whose sources have not changed
# since the last one is kept.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install Node.js 20 or newer to build the web app." >&2
    exit 1
fi

sources_hash() {
    find . \( -name node_modules -o -name .next -o -name out \) -prune -o -type f ! -name next-env.d.ts ! -name "*.tsbuildinfo" -print \
        | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}

wanted=$(sources_hash)
if [ -f out/index.html ] && [ "$(cat out/.sources-hash 2>/dev/null)" = "$wanted" ]; then
    echo "Web app is up to date (web/out)." >&2
    exit 0
fi

export NEXT_TELEMETRY_DISABLED=1
echo "Installing the web app's packages" >&2
npm ci --no-audit --no-fund --loglevel=error
echo "Building the web app" >&2
npm run build --silent
echo "$wanted" > out/.sources-hash
echo "Built the web app into web/out" >&2
