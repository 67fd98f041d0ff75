# bty — build, test, measure.
#
# Targets: build (release, host), static (musl, what ships), static-arm64 (the same binary for
# aarch64, cross-linked by cargo-zigbuild), size (budget check), test (the whole
# suite, as .ci/run and the README run it), lint, e2e (QEMU netboot), bench (side-by-side
# benchmarks, prints ratios), fuzz (bounded), run (bty-web on ./state), deps (host packages),
# media-* (appliance images under out/media), media-test (boots them under QEMU).
# Media downloads are cached in BTY_MEDIA_CACHE (default /var/cache/bty-media), outside the tree.
# Host tools: cargo/rustup; tests/deps.sh installs the rest (Debian packages, musl target).
SHELL := /bin/bash
CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(MUSL_TARGET)/release/bty
ARM_TARGET := aarch64-unknown-linux-musl
ARM_BIN := target/$(ARM_TARGET)/release/bty
# Downloads and build tools of the media targets live outside the tree (tests/deps.sh fills it).
BTY_MEDIA_CACHE ?= /var/cache/bty-media
export BTY_MEDIA_CACHE
ZIG_PATH := $(BTY_MEDIA_CACHE)/tools/zig-venv/bin:$(BTY_MEDIA_CACHE)/tools/bin

.PHONY: all build static static-arm64 size size-arm64 test lint unit e2e bench fuzz deps run \
	netboot clean media-server-x86 media-server-rpi media-container media-test media-test-budget \
	media-test-server-x86 media-test-server-rpi media-test-container media-usb media-usb-test

all: build

build:
	$(CARGO) build --release

static:
	$(CARGO) build --release --target $(MUSL_TARGET)

# zig links against its own musl; cargo-zigbuild finds it as `python3 -m ziglang` (the venv).
static-arm64:
	PATH="$(ZIG_PATH):$$PATH" $(CARGO) zigbuild --release --target $(ARM_TARGET)

size: static
	tests/size-check.sh $(STATIC_BIN)

size-arm64: static-arm64
	STRIP=aarch64-linux-gnu-strip tests/size-check.sh $(ARM_BIN)

deps:
	bash tests/deps.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

# The whole suite: host packages, lint, the static builds (first, so tests/static_build.rs checks
# them), unit + black-box tests, the size budgets, the QEMU netboot end-to-end run and the
# appliance images.
test: deps lint static static-arm64 unit size size-arm64 e2e media-test

e2e: static netboot
	bash tests/e2e/run.sh

netboot: static
	$(MAKE) -C bty-media netboot BTY=$(abspath $(STATIC_BIN))

# Appliance images. Each media-* target builds one artifact into out/media/ (+ SHA256SUMS).
media-server-x86: static netboot
	$(MAKE) -C bty-media server-x86 BTY=$(abspath $(STATIC_BIN))

# The Raspberry Pi SD image serves the x86_64 netboot artifacts (the fleet is x86).
media-server-rpi: static-arm64 netboot
	$(MAKE) -C bty-media server-rpi BTY=$(abspath $(ARM_BIN))

media-container: static static-arm64
	$(MAKE) -C bty-media container BTY_AMD64=$(abspath $(STATIC_BIN)) BTY_ARM64=$(abspath $(ARM_BIN))

# media-test boots every appliance image: one script per artifact, each with its own image as
# a prerequisite. Other artifacts append their target and script here.
# media-test-server-rpi: the arm64 build (qemu-user, mkinitramfs once) takes about 15 min on
# 2 cores and its -M virt boot about 1 min (bty-media/README.md).
MEDIA_TESTS := media-test-budget media-test-server-x86 media-usb-test media-test-container \
	media-test-server-rpi
media-test: $(MEDIA_TESTS)

media-test-budget:
	sh tests/media/budget.sh

media-test-server-x86: media-server-x86
	bash tests/media/server-x86.sh

# The USB live stick (bty-media/usb.sh): IMAGES="a.img.zst dir/ ..." preloads BTY_IMAGES,
# BTY_IMAGES_SIZE=2G sizes it; downloads are cached in BTY_MEDIA_CACHE (/var/cache/bty-media).
media-usb: static
	BTY=$(abspath $(STATIC_BIN)) OUT=$(abspath out/media) sh bty-media/usb.sh

# The stick under QEMU: OVMF + SeaBIOS, the wizard over the serial console, bty.auto=.
media-usb-test: static
	bash tests/media/usb.sh

media-test-server-rpi: media-server-rpi
	bash tests/media/server-rpi.sh

# BTY_MEDIA_TEST=1: a missing artifact fails the test instead of skipping it.
media-test-container: media-container
	BTY_MEDIA_TEST=1 $(CARGO) test --test media_container

bench: build
	bash tests/bench/run-all.sh

fuzz:
	bash tests/fuzz.sh

run:
	$(CARGO) run --release -- web --state-dir ./state --listen 127.0.0.1:8080

clean:
	$(CARGO) clean
	rm -rf out
