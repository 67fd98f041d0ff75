# bty — build, test, measure.
#
# Targets: build (release, host), static (musl, what ships), size (budget check), test (the whole
# suite, as .ci/run and the README run it), lint, e2e (QEMU netboot), bench (side-by-side
# benchmarks, prints ratios), fuzz (bounded), run (bty-web on ./state), deps (host packages),
# media-* (appliance images under out/media), media-test (boots them under QEMU).
# Media downloads are cached in BTY_MEDIA_CACHE (default /var/cache/bty-media), outside the tree.
# Host tools: cargo/rustup; tests/deps.sh installs the rest (Debian packages, musl target).
SHELL := /bin/bash
CARGO ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(MUSL_TARGET)/release/bty

.PHONY: all build static size test lint unit e2e bench fuzz deps run netboot clean \
	media-server-x86 media-test media-test-budget media-test-server-x86 media-usb media-usb-test

all: build

build:
	$(CARGO) build --release

static:
	$(CARGO) build --release --target $(MUSL_TARGET)

size: static
	tests/size-check.sh $(STATIC_BIN)

deps:
	bash tests/deps.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

# The whole suite: host packages, lint, the static build (first, so tests/static_build.rs checks
# it), unit + black-box tests, the size budget, and the QEMU netboot end-to-end run.
test: deps lint static unit size e2e media-test

e2e: static netboot
	bash tests/e2e/run.sh

netboot: static
	$(MAKE) -C bty-media netboot BTY=$(abspath $(STATIC_BIN))

# Appliance images. Each media-* target builds one artifact into out/media/ (+ SHA256SUMS).
media-server-x86: static netboot
	$(MAKE) -C bty-media server-x86 BTY=$(abspath $(STATIC_BIN))

# media-test boots every appliance image: one script per artifact, each with its own image as
# a prerequisite. Other artifacts append their target and script here.
MEDIA_TESTS := media-test-budget media-test-server-x86 media-usb-test
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

bench: build
	bash tests/bench/run-all.sh

fuzz:
	bash tests/fuzz.sh

run:
	$(CARGO) run --release -- web --state-dir ./state --listen 127.0.0.1:8080

clean:
	$(CARGO) clean
	rm -rf out
