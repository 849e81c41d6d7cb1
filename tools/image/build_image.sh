#!/usr/bin/env bash
# build_image.sh - build the visionpack runtime image with no container registry.
#
#   bash tools/image/build_image.sh [--force]
#
# 1. root filesystem: debootstrap Debian bookworm (variant minbase + python3, python3-venv, libgomp1)
#    from the mirror in /etc/apt/sources.list*; cached as original/.state/image/rootfs-<key>.tar
# 2. venv /opt/visionpack/venv inside it (chroot) from original/wheels only:
#    pip --no-index --require-hashes -r original/requirements.lock; user visionpack (10001:10001);
#    /usr/local/bin/visionpack-serve and visionpack-healthcheck. No model or app code: releases are mounted.
# 3. tar -C rootfs -c . | docker import --change ... -> visionpack-runtime:<lock sha256[:16]>
# 4. docker save -> original/images/visionpack-runtime-<key>.tar, .tar.sha256, .json (the inputs)
#
# Unchanged inputs (lock sha256, BUILD_VERSION in tools/image/image.py, Debian suite/packages):
# the existing tar is reused and nothing is done (--force rebuilds). Needs root, debootstrap
# (installed from Debian's packages when missing) and a running Docker engine
# (bash .ci/docker-engine.sh). Heavy steps run under nice -n 19. Exit: 0 ok, 2 usage,
# 3 a prerequisite is missing or the build failed (log: original/.state/logs/image.log).
set -euo pipefail

readonly EXIT_USAGE=2 EXIT_BUILD=3
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/tools/image"
HOST_PY="${VISIONPACK_HOST_PYTHON:-python3}"
STATE="$REPO/original/.state"
WORK="$STATE/image"
LOG="$STATE/logs/image.log"
IMAGES="$REPO/original/images"
NICE=(nice -n 19)

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_image.sh: unknown option: $arg" >&2; exit "$EXIT_USAGE" ;;
    esac
done

img() { "$HOST_PY" "$HERE/image.py" "$@" --root "$REPO"; }
fail() { echo "build_image.sh: FAILED: $*" >&2; [[ -f "$LOG" ]] && tail -n 15 "$LOG" | sed 's/^/    /' >&2; exit "$EXIT_BUILD"; }
started=$SECONDS

if [[ ! -f "$REPO/original/requirements.lock" ]]; then
    echo "build_image.sh: original/requirements.lock is missing" >&2; exit "$EXIT_BUILD"
fi
TAG="$(img tag)"
TAR="$(img tar)"
if (( ! force )) && why_not="$(img check)"; then
    echo "    image $TAG: reused ($(basename "$TAR"), $(du -h "$TAR" | cut -f1); inputs unchanged)"
    exit 0
fi
echo "    image $TAG: building (${why_not:-forced})"

if [[ $EUID -ne 0 ]]; then
    echo "build_image.sh: needs root (debootstrap and chroot)" >&2; exit "$EXIT_BUILD"
fi
if ! docker version >/dev/null 2>&1; then
    echo "build_image.sh: no Docker engine answers; start one with 'bash .ci/docker-engine.sh'" >&2; exit "$EXIT_BUILD"
fi
# Every locked wheel must be present; pip checks each hash again inside the chroot.
missing="$(sed -n 's/.*# file: \([^ ]*\).*/\1/p' "$REPO/original/requirements.lock" | while read -r f; do
    [[ -f "$REPO/original/wheels/$f" ]] || echo "$f"; done)"
if [[ -n "$missing" ]]; then
    echo "build_image.sh: original/wheels is incomplete (first missing: $(head -n1 <<<"$missing")); run 'bash download.sh'" >&2
    exit "$EXIT_BUILD"
fi
if ! command -v debootstrap >/dev/null; then
    echo "    installing debootstrap from Debian's packages"
    compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null || apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
        { echo "build_image.sh: cannot install debootstrap" >&2; exit "$EXIT_BUILD"; }
fi

mkdir -p "$WORK" "$(dirname "$LOG")" "$IMAGES"
: >"$LOG"
exec 8>"$WORK/.lock"
flock -n 8 || { echo "build_image.sh: another image build runs on $REPO" >&2; exit "$EXIT_BUILD"; }

ROOTFS_TAR="$WORK/rootfs-$(img rootfs-key).tar"
ROOTFS="$WORK/rootfs"
MIRROR="$(img mirror)"
PACKAGES="$("$HOST_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import image; print(",".join(image.PACKAGES))' "$HERE")"

cleanup() {
    # Mounts first: rm -rf through a bind mount of /proc or /dev would be a disaster.
    for m in proc dev/pts dev; do
        mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -l "$ROOTFS/$m" || true
    done
    if ! grep -qs " $ROOTFS/" /proc/mounts; then rm -rf "$ROOTFS" "$WORK/debootstrap.tmp"; fi
    rm -f "$TAR.tmp"
}
trap cleanup EXIT
cleanup

# --- 1. the bare root filesystem (cached across locks) -------------------------------------------
if [[ -f "$ROOTFS_TAR" ]]; then
    echo "==> rootfs: reused $(basename "$ROOTFS_TAR")"
else
    echo "==> rootfs: debootstrap --variant=minbase bookworm from $MIRROR (log: $LOG)"
    t=$SECONDS
    "${NICE[@]}" debootstrap --variant=minbase --include="$PACKAGES" bookworm "$WORK/debootstrap.tmp" "$MIRROR" \
        >>"$LOG" 2>&1 || fail "debootstrap (is $MIRROR reachable?)"
    # The package lists and .debs are not needed at run time and differ from mirror to mirror.
    rm -rf "$WORK/debootstrap.tmp/var/cache/apt/archives/"*.deb "$WORK/debootstrap.tmp/var/lib/apt/lists/"*
    "${NICE[@]}" tar -C "$WORK/debootstrap.tmp" --numeric-owner --xattrs -cf "$ROOTFS_TAR.tmp" . >>"$LOG" 2>&1 ||
        fail "archiving the root filesystem"
    mv -f "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$WORK/debootstrap.tmp"
    echo "    rootfs cached in $((SECONDS - t)) s ($(du -h "$ROOTFS_TAR" | cut -f1))"
fi
mkdir -p "$ROOTFS"
"${NICE[@]}" tar -C "$ROOTFS" --numeric-owner --xattrs -xf "$ROOTFS_TAR" || fail "unpacking $ROOTFS_TAR"
chroot "$ROOTFS" python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' >>"$LOG" 2>&1 ||
    fail "the root filesystem's python3 is not 3.11 (the wheelhouse is cp311)"

# --- 2. venv from the wheelhouse, user, entry scripts ---------------------------------------------
echo "==> venv: /opt/visionpack/venv from original/wheels (no index, hashes required)"
t=$SECONDS
mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"
mkdir -p "$ROOTFS/tmp/wheels"
# Hard links when on the same filesystem: no copy of ~300 MB; the files are read only.
cp -l "$REPO/original/wheels/"*.whl "$ROOTFS/tmp/wheels/" 2>/dev/null || cp "$REPO/original/wheels/"*.whl "$ROOTFS/tmp/wheels/"
cp "$REPO/original/requirements.lock" "$ROOTFS/tmp/requirements.lock"
"${NICE[@]}" chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 /bin/sh -euc '
        python3 -m venv /opt/visionpack/venv
        /opt/visionpack/venv/bin/python -m pip install --isolated --no-index --no-cache-dir \
            --find-links /tmp/wheels --require-hashes --only-binary=:all: -r /tmp/requirements.lock
        rm -rf /tmp/wheels /tmp/requirements.lock
        # The import check proves the system libraries the wheels need are in the image (libgomp), for
        # every inference runtime (paddle, onnxruntime, openvino) and the gallery database driver.
        /opt/visionpack/venv/bin/python -c "import paddle, onnxruntime, openvino, psycopg, cv2, numpy, flask, gunicorn, cryptography, yaml, faiss, psutil"
        groupadd --gid 10001 visionpack
        useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin visionpack
        rm -rf /var/cache/apt/* /var/lib/apt/lists/* /var/log/*.log /root/.cache /usr/share/doc/* \
            /usr/share/man/* /usr/share/info/* /usr/share/locale/*
    ' >>"$LOG" 2>&1 || fail "building the venv inside the root filesystem"
umount -l "$ROOTFS/dev" "$ROOTFS/proc"
install -m 0755 "$HERE/visionpack-serve" "$ROOTFS/usr/local/bin/visionpack-serve"
install -m 0755 "$HERE/visionpack-healthcheck" "$ROOTFS/usr/local/bin/visionpack-healthcheck"
: >"$ROOTFS/etc/machine-id"   # never the build machine's; the host's is mounted at run time
echo "    venv built in $((SECONDS - t)) s ($(du -sh "$ROOTFS/opt/visionpack/venv" | cut -f1))"

# --- 3. import ----------------------------------------------------------------------------------
echo "==> docker import -> $TAG"
t=$SECONDS
KEY="${TAG#*:}"
image_id="$("${NICE[@]}" tar -C "$ROOTFS" --numeric-owner --xattrs -c . | docker import \
    --change 'ENV PATH=/opt/visionpack/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'USER 10001:10001' \
    --change 'WORKDIR /tmp' \
    --change 'HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 CMD ["/usr/local/bin/visionpack-healthcheck"]' \
    --change 'CMD ["/usr/local/bin/visionpack-serve"]' \
    --change "LABEL org.opencontainers.image.title=visionpack-runtime visionpack.lock=$KEY visionpack.image-build=$("$HOST_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import image; print(image.BUILD_VERSION)' "$HERE")" \
    --message "visionpack runtime, requirements.lock sha256 $KEY..." \
    - "$TAG" 2>>"$LOG")" || fail "docker import"
echo "    imported $image_id in $((SECONDS - t)) s"

# --- 4. save + record -----------------------------------------------------------------------------
echo "==> docker save -> original/images/$(basename "$TAR")"
t=$SECONDS
rm -rf "$ROOTFS"
"${NICE[@]}" docker save -o "$TAR.tmp" "$TAG" 2>>"$LOG" || fail "docker save"
chmod 0644 "$TAR.tmp"   # docker save writes 0600; the package is read by other users too
mv -f "$TAR.tmp" "$TAR"
img record --tar "$TAR" --image-id "$image_id" --seconds "$((SECONDS - started))" --mirror "$MIRROR" >/dev/null
img prune | sed 's/^/    /'
echo "    saved in $((SECONDS - t)) s: $(du -h "$TAR" | cut -f1), sha256 $(cut -c1-16 "$TAR.sha256")..."
echo "build_image.sh: $TAG built in $((SECONDS - started)) s"
