#!/usr/bin/env bash
# Fuzzes the TFTP packet codec and transfer state machine for a bounded time (make fuzz).
# Inputs: FUZZ_SECONDS (default 60). Outputs: libFuzzer's log; crashes land in
# fuzz/artifacts/tftp_packet/ and fail the run. Tools: cargo, cargo-fuzz (installed from
# crates.io when missing), a C++ compiler for libFuzzer.
#
# Only a stable toolchain is available, so cargo-fuzz runs with RUSTC_BOOTSTRAP=1 (it passes
# -Z flags) and without a sanitizer (-s none): Rust's own bounds and overflow checks (debug
# assertions are on) are what catch bugs here, with libFuzzer's coverage guidance. The first
# build compiles bty and all its dependencies instrumented into fuzz/target (about 11 CPU-minutes).
set -eu
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
mkdir -p fuzz/corpus/tftp_packet
# Seeds: the request shapes real clients send.
printf '\0\1snponly.efi\0octet\0tsize\0000\0blksize\0001468\0windowsize\0004\0' > fuzz/corpus/tftp_packet/ovmf
printf '\0\1ipxe.efi\0octet\0blksize\0001432\0tsize\0000\0' > fuzz/corpus/tftp_packet/ipxe
printf '\1\0\4\0\0\376\0\4\0\1\376\376\0\4\0\2' > fuzz/corpus/tftp_packet/acks
RUSTC_BOOTSTRAP=1 cargo fuzz run -s none --debug-assertions tftp_packet fuzz/corpus/tftp_packet -- \
  -max_total_time="$seconds" -max_len=2048
