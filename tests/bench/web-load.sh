#!/usr/bin/env bash
# bty-web under hostile connections: this build side by side with the last build before the
# poller edge (git 691768f, tiny_http with capped connection threads), on loopback.
#
# Purpose: the connection-exhaustion figures of issue #14: with 2,000 half-open connections,
#   500 trickled bodies, 500 slow readers of a 64 MiB /boot file and 2,000 idle keep-alive
#   connections held from 127.0.0.2-11, how many the server holds, whether /healthz and
#   /pxe/{mac} from 127.0.0.1 answer (p50/p99), RSS, threads, and whether the sockets are
#   released when the load leaves.
# Inputs (environment): BTY (default target/release/bty), OLD_REV (default 691768f), OLD_BTY
#   (default target/bench/$OLD_REV/bty; built from a temporary git worktree of OLD_REV with
#   `cargo build --release` into target/bench-old on first use, several minutes).
# Outputs: a table on stdout, one column per build, with new/old ratios where both answered.
# Tools: cargo, git, awk. The load generator is tests/web_hostile.rs (hostile_load_figures).
set -eu
old_rev=${OLD_REV:-691768f}
bty=$(readlink -f "${BTY:-target/release/bty}")
old=${OLD_BTY:-target/bench/$old_rev/bty}
[ -x "$bty" ] || { echo "web-load bench: $bty is not built (make build)" >&2; exit 1; }
if [ ! -x "$old" ]; then
  tree=$(mktemp -d /var/tmp/bty-bench-old.XXXXXX)
  git worktree add --detach "$tree/src" "$old_rev" >/dev/null
  cargo build --release --manifest-path "$tree/src/Cargo.toml" --target-dir "$PWD/target/bench-old"
  mkdir -p "$(dirname "$old")"
  cp "$PWD/target/bench-old/release/bty" "$old"
  git worktree remove --force "$tree/src"
  rm -rf "$tree"
fi
old=$(readlink -f "$old")
cargo test --quiet --test web_hostile --no-run 2>/dev/null
figures() {
  BTY_TEST_BIN=$1 cargo test --quiet --test web_hostile -- --ignored --exact hostile_load_figures --nocapture 2>/dev/null |
    grep '^FIGURES '
}
a=$(figures "$old")
b=$(figures "$bty")
echo "$a" | sed "s/^FIGURES/$old_rev:/"
echo "$b" | sed "s/^FIGURES/this build:/"
printf '%s\n%s\n' "$a" "$b" | awk -v old="$old_rev" '
  function field(line, key,   i, n, kv) {
    n = split(line, kv, " ")
    for (i = 2; i <= n; i++) if (index(kv[i], key "=") == 1) return substr(kv[i], length(key) + 2)
    return ""
  }
  function held(line, kind,   i, n, parts) {
    n = split(field(line, "held"), parts, ",")
    for (i = 1; i <= n; i++) if (index(parts[i], kind "=") == 1) return substr(parts[i], length(kind) + 2)
    return "?"
  }
  { line[NR] = $0 }
  END {
    printf "%-34s %16s %16s %10s\n", "figure", old, "this build", "new/old"
    split("half-open trickled slow-reader idle-keepalive", kinds, " ")
    for (k = 1; k <= 4; k++) {
      printf "%-34s %16s %16s\n", "held: " kinds[k], held(line[1], kinds[k]), held(line[2], kinds[k])
    }
    printf "%-34s %16s %16s\n", "probes answered (/healthz, /pxe)", field(line[1], "answered"), field(line[2], "answered")
    for (f = 1; f <= 5; f++) {
      split("p50_ms p99_ms rss_mib threads sockets", keys, " ")
      split("probe p50 (ms)|probe p99 (ms)|server RSS (MiB)|server threads|server sockets", names, "|")
      x = field(line[1], keys[f]); y = field(line[2], keys[f])
      ratio = (x + 0 > 0 && !(f <= 2 && field(line[1], "answered") ~ /^0\//)) ? sprintf("%.2f", y / x) : "n/a"
      printf "%-34s %16s %16s %10s\n", names[f], x, y, ratio
    }
    printf "%-34s %16s %16s\n", "sockets released after the load", field(line[1], "released"), field(line[2], "released")
  }'
