#!/bin/sh
# Mozilla's linter (web-ext lint, pinned in tools/package-lock.json) over the Firefox package
# dist/callto-firefox: npm ci in tools/ when its node_modules is missing or the lock changed; with
# --install-only it stops there (what `make test` needs beforehand). Other arguments go to web-ext lint.
set -eu
cd "$(dirname "$0")"
stamp=tools/node_modules/.callto-lock.sha256
want=$(sha256sum tools/package-lock.json | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ ! -x tools/node_modules/.bin/web-ext ] || [ "$want" != "$have" ]; then
  (cd tools && npm ci --no-audit --no-fund)
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = "--install-only" ]; then exit 0; fi
[ -f dist/callto-firefox/manifest.json ] || sh build.sh
NO_UPDATE_NOTIFIER=1 exec tools/node_modules/.bin/web-ext lint --source-dir dist/callto-firefox \
  --no-config-discovery "$@"
