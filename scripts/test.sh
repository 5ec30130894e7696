#!/usr/bin/env bash
# Runs the suite in two parts: everything on the host network (SQLite and PostgreSQL), then the media
# and browser tests inside a private network namespace that has only loopback (see docs/testing.md).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=".venv/bin/pytest"
mkdir -p test-output
status=0
# Two workers: most tests wait on servers, phones and browsers rather than on the CPU. A test file
# stays on one worker, so module-scoped servers are not started twice.
$PYTEST -m "not netns" -n "${CALLTO_TEST_WORKERS:-2}" --dist loadfile "$@" || status=$?
if [ $status -eq 5 ]; then echo "pytest collected no tests: that is a failure"; status=1; fi
if .venv/bin/python - <<'PY'
import sys, subprocess
r = subprocess.run([".venv/bin/pytest", "-q", "--collect-only", "-m", "netns"], capture_output=True, text=True)
sys.exit(0 if r.returncode == 0 else 1)
PY
then
  unshare -n sh -c 'ip link set lo up && exec .venv/bin/pytest -m netns "$@"' sh "$@"
  ns=$?
  [ $ns -eq 5 ] && ns=0   # no media tests selected is fine here: the host part ran tests
  [ $ns -ne 0 ] && status=$ns
fi
exit $status
