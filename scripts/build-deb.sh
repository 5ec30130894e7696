#!/usr/bin/env bash
# Builds the Debian package of the server, callto_<version>_<arch>.deb, with dpkg-deb.
#
# The package is self-contained: /opt/callto is a virtual environment made here, at build time, with
# Debian's python3.11 from the project's wheel and its dependencies (so installing needs no network),
# with the built web app inside. The unit, the commented config and the maintainer scripts come from
# packaging/deb/. `make deb` runs this after building web/.
#
#   scripts/build-deb.sh [--version VERSION] [--source DIR] [--web-dist DIR] [--out DIR] [--compress xz|zstd|gzip|none]
#
# --version  Debian version (default: the project's version from pyproject.toml, plus "-1")
# --source   the Python project to package (pyproject.toml + src/; default: this checkout)
# --web-dist the built web app (default: web/dist)
# --out      where the .deb goes (default: dist/)
# --compress dpkg-deb compression (default: xz, what Debian uses)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOURCE=$ROOT
WEB_DIST=$ROOT/web/dist
OUT=$ROOT/dist
VERSION=""
COMPRESS=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION=$2; shift 2 ;;
    --source) SOURCE=$(cd "$2" && pwd); shift 2 ;;
    --web-dist) WEB_DIST=$(cd "$2" && pwd); shift 2 ;;
    --out) mkdir -p "$2"; OUT=$(cd "$2" && pwd); shift 2 ;;
    --compress) COMPRESS=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | cut -c3-; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# The venv is built with, and the package depends on, Debian's own interpreter: the binary wheels
# inside are for exactly this Python (cp311).
PYTHON=/usr/bin/python3.11
PYVER=3.11
PKG=$ROOT/packaging/deb
[ -x "$PYTHON" ] || { echo "build-deb.sh: $PYTHON is missing (apt-get install python3.11 python3-venv)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb is missing (apt-get install dpkg-dev)" >&2; exit 1; }
[ -f "$WEB_DIST/index.html" ] || { echo "build-deb.sh: no built web app in $WEB_DIST (run: bash web/build.sh)" >&2; exit 1; }
if [ -z "$VERSION" ]; then
  upstream=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SOURCE/pyproject.toml" | head -1)
  VERSION="$upstream-1"
fi
ARCH=$(dpkg --print-architecture)
DEB=$OUT/callto_${VERSION}_${ARCH}.deb
started=$(date +%s)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/callto-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/root
VENV=$STAGE/opt/callto

# A clean copy of the project, so the build leaves nothing (build/, egg-info) in the checkout.
mkdir -p "$WORK/src"
cp -r "$SOURCE/pyproject.toml" "$SOURCE/README.md" "$SOURCE/src" "$WORK/src/"
find "$WORK/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +

echo "build-deb.sh: virtual environment for callto $VERSION ($ARCH)"
"$PYTHON" -m venv "$VENV"
# pip's own configuration (index, find-links, PIP_* variables) decides where the wheels come from.
"$VENV/bin/python" -m pip install -q --no-compile --disable-pip-version-check "$WORK/src" 2> >(
  grep -v "is ignored: it is neither a file nor a directory" >&2)
# What only the build needed, and the desktop app (its own package: packaging/link.spec).
"$VENV/bin/python" -m pip uninstall -q -y pip setuptools
site=$VENV/lib/python$PYVER/site-packages
rm -rf "$site/callto/link" "$VENV/bin/callto-link" "$VENV"/bin/[Aa]ctivate*
cp -r "$WEB_DIST" "$site/callto/web_dist"
# Where the wheel was built (a temporary folder) is no business of the installed system.
rm -f "$site"/callto-*.dist-info/direct_url.json
sed -i '/direct_url.json/d' "$site"/callto-*.dist-info/RECORD

# The venv was made at $VENV; it runs at /opt/callto. Scripts and pyvenv.cfg name their path.
grep -rlI --null "$VENV" "$VENV" | xargs -0 -r sed -i "s#$VENV#/opt/callto#g"
if grep -rqI "$WORK" "$VENV"; then
  echo "build-deb.sh: build paths left in the package:" >&2; grep -rlI "$WORK" "$VENV" >&2; exit 1
fi
# Byte-code made now, under its installed path: /opt is read-only for the service. phonenumbers'
# geocoder data (22 MB of byte-code) is left out: callto does not use the geocoder.
"$PYTHON" -m compileall -q -j 0 -s "$STAGE" -p / -x '/phonenumbers/geodata/' "$site" >/dev/null

install -D -m 0644 "$PKG/callto.toml" "$STAGE/etc/callto/callto.toml"
install -D -m 0644 "$PKG/callto.service" "$STAGE/lib/systemd/system/callto.service"
install -D -m 0755 "$PKG/callto-wrapper.sh" "$STAGE/usr/bin/callto"
install -D -m 0644 "$PKG/copyright" "$STAGE/usr/share/doc/callto/copyright"

mkdir -p "$STAGE/DEBIAN"
install -m 0755 "$PKG/postinst" "$PKG/prerm" "$PKG/postrm" "$STAGE/DEBIAN/"
echo /etc/callto/callto.toml > "$STAGE/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" "$PKG/control.in" > "$STAGE/DEBIAN/control"

find "$STAGE" -type d -exec chmod 0755 {} +
mkdir -p "$OUT"
echo "build-deb.sh: tree ready in $(( $(date +%s) - started ))s; dpkg-deb -Z$COMPRESS"
dpkg-deb --root-owner-group -Z"$COMPRESS" --build "$STAGE" "$DEB" >/dev/null
echo "build-deb.sh: $DEB ($(du -h "$DEB" | cut -f1), installed ${size} KiB) in $(( $(date +%s) - started ))s"
