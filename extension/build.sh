#!/bin/sh
# Builds the browser extension: npm ci when node_modules is missing or package-lock.json changed, the
# bundle (esbuild) into dist/callto (Chromium) and dist/callto-firefox (Firefox), then a zip of each.
set -eu
cd "$(dirname "$0")"
stamp=node_modules/.callto-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ ! -d node_modules ] || [ "$want" != "$have" ]; then
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
npx --no-install tsc --noEmit -p .
node build.mjs
# zip entries are relative to the package's root, as both stores and about:debugging want
(cd dist/callto && python3 -m zipfile -c ../callto-extension.zip ./*)
(cd dist/callto-firefox && python3 -m zipfile -c ../callto-firefox.zip ./*)
echo "extension zips: $(pwd)/dist/callto-extension.zip (Chromium), $(pwd)/dist/callto-firefox.zip (Firefox)"
