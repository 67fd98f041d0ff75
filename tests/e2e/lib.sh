# lib.sh — helpers shared by the QEMU end-to-end scripts (tests/e2e/run.sh, tests/media/*.sh).
# Sourced by bash.

# expect_in_order FILE PATTERN... : each pattern is found after the previous one
expect_in_order() {
    python3 - "$@" <<'PY'
import sys
path, pats = sys.argv[1], sys.argv[2:]
text = open(path, errors="replace").read()
pos = 0
for p in pats:
    i = text.find(p, pos)
    if i < 0:
        sys.exit(f"{path}: {p!r} not found after offset {pos}")
    pos = i + len(p)
PY
}

# Prefixes each line with the host's Unix time, so logs without clocks (bty-web's access log,
# bty-tftp's) can be lined up with each other by tests/bench/netboot.sh.
stamp() { python3 -u -c '
import sys, time
for line in sys.stdin.buffer:
    sys.stdout.buffer.write(b"%.3f " % time.time() + line)
    sys.stdout.buffer.flush()'; }
