#!/bin/sh
# Builds the web CTI into web/dist. Idempotent: `npm ci` runs only when node_modules is missing or
# package-lock.json changed since the last install; then `npm run build` (type check, bundle, sizes).
set -eu
cd "$(dirname "$0")"
stamp=node_modules/.callto-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ ! -d node_modules ] || [ "$want" != "$have" ]; then
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
npm run build
