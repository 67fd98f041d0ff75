#!/bin/sh
# Runs upstream bty 0.77.2's web tests (tests/test_web.py of its sdist) over HTTP against our
# bty-web, to find wire-compatibility gaps. Not part of `make test`: it needs PyPI.
# Inputs: BTY_BIN (default target/debug/bty), WORK (default /tmp/bty-upstream-tests).
# Outputs: the pytest summary, and $WORK/results.txt (one line per test: PASSED/FAILED).
# Host tools: python3 with venv, network access to PyPI.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BTY_BIN=${BTY_BIN:-$here/../../target/debug/bty}
WORK=${WORK:-/tmp/bty-upstream-tests}
mkdir -p "$WORK"
[ -x "$WORK/venv/bin/pytest" ] || {
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q 'bty-lab[web]==0.77.2' pytest httpx
}
[ -d "$WORK/src/bty_lab-0.77.2" ] || {
    mkdir -p "$WORK/src"
    "$WORK/venv/bin/pip" download -q --no-deps --no-binary :all: -d "$WORK/src" 'bty-lab==0.77.2'
    tar -xzf "$WORK/src/bty_lab-0.77.2.tar.gz" -C "$WORK/src"
}
tests="$WORK/tests"
rm -rf "$tests" && mkdir -p "$tests"
cp "$WORK/src/bty_lab-0.77.2/tests/conftest.py" "$tests/"
cat "$here/conftest_http.py" >> "$tests/conftest.py"
# Upstream's in-process fixture yields to ours (a module fixture would shadow the conftest one).
sed 's/^def app_client(/def _in_process_app_client(/' "$WORK/src/bty_lab-0.77.2/tests/test_web.py" > "$tests/test_web.py"
cd "$tests"
BTY_BIN=$(realpath "$BTY_BIN") "$WORK/venv/bin/pytest" -q -rA -p no:cacheprovider test_web.py "$@" \
    | tee "$WORK/pytest.log" | grep -E '^(PASSED|FAILED|ERROR) ' | sort > "$WORK/results.txt" || true
tail -n 1 "$WORK/pytest.log"
