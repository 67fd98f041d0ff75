#!/bin/sh
# container.sh — builds the bty-web container image for linux/amd64 and linux/arm64, without a
# daemon: buildah (vfs storage in a private temporary root) builds container/Containerfile once
# per platform and puts both under one index.
#
# Inputs:  BTY_AMD64  absolute path of the x86_64 static bty (make static)
#          BTY_ARM64  absolute path of the aarch64 static bty (make static-arm64)
#          OUT        output directory (default ../out/media)
#          TAG        image tag (default: the version the binary prints)
#          BUDGET_MIB size budget per platform, compressed layers + config (default 15)
# Outputs: $OUT/bty-web-oci/          OCI image layout; tag $TAG is the index of both platforms
#          $OUT/bty-web-amd64.docker.tar, $OUT/bty-web-arm64.docker.tar  docker-archive
#                                     (`podman load`/`docker load`), one platform each, with
#                                     the HEALTHCHECK (`bty-web health`)
#          $OUT/SHA256SUMS            (entries for the two tarballs added or replaced)
# Host tools: buildah, skopeo, jq, sha256sum, tar; ca-certificates (the CA bundle copied in);
#          tzdata (/usr/share/zoneinfo copied in); root (buildah's vfs storage keeps file owners).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
: "${BTY_AMD64:?set BTY_AMD64=/abs/path/to/x86_64 static bty}"
: "${BTY_ARM64:?set BTY_ARM64=/abs/path/to/aarch64 static bty}"
OUT=${OUT:-$here/../out/media}
BUDGET_MIB=${BUDGET_MIB:-15}
CA=/etc/ssl/certs/ca-certificates.crt
# Each binary must be an ELF for its platform (e_machine 62 x86-64, 183 aarch64).
for pair in "$BTY_AMD64=62" "$BTY_ARM64=183"; do
    b=${pair%=*}
    [ -f "$b" ] || { echo "container: $b does not exist (make static / make static-arm64)" >&2; exit 1; }
    [ "$(od -An -j18 -N2 -tu2 "$b" | tr -d ' ')" = "${pair##*=}" ] ||
        { echo "container: $b is not built for its platform (ELF machine ${pair##*=} expected)" >&2; exit 1; }
done
[ -f "$CA" ] || { echo "container: $CA is missing; apt-get install ca-certificates" >&2; exit 1; }
ZONEINFO=/usr/share/zoneinfo
[ -f "$ZONEINFO/Europe/Berlin" ] || { echo "container: $ZONEINFO is missing; apt-get install tzdata" >&2; exit 1; }
TAG=${TAG:-$("$BTY_AMD64" --version | awk '{print $2}')}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bty-container.XXXXXX")
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() { bh rm --all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# 1. The build context: one small root filesystem per architecture, plus the empty state dir.
ctx=$work/context
for arch in amd64 arm64; do
    r=$ctx/rootfs-$arch
    mkdir -p "$r/usr/local/bin" "$r/etc/bty" "$r/etc/ssl/certs" "$r/tmp"
    chmod 1777 "$r/tmp"
    if [ $arch = amd64 ]; then bin=$BTY_AMD64; else bin=$BTY_ARM64; fi
    install -m 0755 "$bin" "$r/usr/local/bin/bty"
    ln -s bty "$r/usr/local/bin/bty-web"
    install -m 0644 "$here/../rootfs-overlay/etc/bty/bty.toml" "$r/etc/bty/bty.toml"
    install -m 0644 "$CA" "$r/etc/ssl/certs/ca-certificates.crt"
    # The UI's display time zone (`[ui] time_zone`) is looked up here; without it only UTC works.
    mkdir -p "$r/usr/share/zoneinfo"
    tar -C "$ZONEINFO" --exclude=./right --exclude=./posix -cf - . | tar -C "$r/usr/share/zoneinfo" -xf -
    printf 'root:x:0:0:root:/root:/sbin/nologin\nbty:x:65532:65532:bty-web:/var/lib/bty:/sbin/nologin\n' > "$r/etc/passwd"
    printf 'root:x:0:\nbty:x:65532:\n' > "$r/etc/group"
done
mkdir -m 0700 "$ctx/state"

# 2. One image per platform (docker format: the OCI config format has no HEALTHCHECK), then one
#    manifest list of both.
bh manifest create "bty-web:$TAG" >/dev/null
for arch in amd64 arm64; do
    echo "container: building bty-web:$TAG for linux/$arch"
    bh build --quiet --format docker --timestamp 0 --platform linux/$arch \
        --label "org.opencontainers.image.title=bty-web" \
        --label "org.opencontainers.image.version=$TAG" \
        -t "bty-web-$arch:$TAG" -f "$here/container/Containerfile" "$ctx" >/dev/null
    bh manifest add "bty-web:$TAG" "bty-web-$arch:$TAG" >/dev/null
    rm -f "$OUT/bty-web-$arch.docker.tar"
    bh push --quiet "bty-web-$arch:$TAG" "docker-archive:$OUT/bty-web-$arch.docker.tar:localhost/bty-web:$TAG"
done

# 3. The OCI layout: both platforms under one index. Converting to OCI drops the HEALTHCHECK
#    (the OCI config has no such field); compose.yaml declares the same check.
rm -rf "$OUT/bty-web-oci"
bh manifest push --quiet --all --format oci "bty-web:$TAG" "oci:$OUT/bty-web-oci:$TAG"

# 4. The budget: what a pull transfers per platform (compressed layers + config).
blob() { echo "$OUT/bty-web-oci/blobs/sha256/${1#sha256:}"; }
index=$(jq -r --arg t "$TAG" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$OUT/bty-web-oci/index.json")
over=0
for entry in $(jq -r '.manifests[] | "\(.platform.architecture)=\(.digest)"' "$(blob "$index")"); do
    arch=${entry%%=*}
    bytes=$(jq '[.layers[].size, .config.size] | add' "$(blob "${entry#*=}")")
    echo "container: linux/$arch: $bytes bytes compressed (budget $BUDGET_MIB MiB)"
    [ "$bytes" -le $((BUDGET_MIB * 1048576)) ] || over=1
done
[ $over = 0 ] || { echo "container: over the $BUDGET_MIB MiB budget" >&2; exit 1; }

cd "$OUT"
sums=$(grep -v ' bty-web-a[a-z0-9]*\.docker\.tar$' SHA256SUMS 2>/dev/null || true)
{ [ -z "$sums" ] || echo "$sums"; sha256sum bty-web-amd64.docker.tar bty-web-arm64.docker.tar; } > SHA256SUMS.new
mv SHA256SUMS.new SHA256SUMS
echo "container: $OUT/bty-web-oci (tag $TAG), bty-web-{amd64,arm64}.docker.tar"
