# Docker engine + a local base image for the docker target's tests (sourced by .ci/run as root).
#
# No image registry can be reached here, so the base image is built from Debian's package mirror with
# debootstrap and `docker import`ed. The rootfs tarball is cached under /var/cache/nbml-ci so a second
# run on the same machine only re-imports it. Idempotent: an engine that already answers is reused.

NBML_DOCKER_IMAGE=${NBML_DOCKER_IMAGE:-nbml-test-base:bookworm}
NBML_CI_CACHE=${NBML_CI_CACHE:-/var/cache/nbml-ci}
export NBML_DOCKER_IMAGE
mkdir -p /var/log/nbml-ci

_nbml_need_apt=()
command -v dockerd >/dev/null 2>&1 || _nbml_need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || _nbml_need_apt+=(debootstrap)
if [ ${#_nbml_need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${_nbml_need_apt[@]}" >/dev/null
fi

# The engine: no iptables/bridge (no privileges for them here; containers run with --network none)
# and the vfs storage driver (overlayfs is not available everywhere).
if ! docker info >/dev/null 2>&1; then
    nohup dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
        >/var/log/nbml-ci/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not start; its log:" >&2
        tail -n 50 /var/log/nbml-ci/dockerd.log >&2
        return 1 2>/dev/null || exit 1
    fi
fi

# The base image: Debian minbase with python3 and venv (ensurepip) for images that add dependencies.
if ! docker image inspect "$NBML_DOCKER_IMAGE" >/dev/null 2>&1; then
    mkdir -p "$NBML_CI_CACHE"
    _nbml_tar="$NBML_CI_CACHE/bookworm-python3-minbase-v2.tar"
    if [ ! -s "$_nbml_tar" ]; then
        _nbml_root=$(mktemp -d /var/tmp/nbml-rootfs.XXXXXX)
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$_nbml_root" http://deb.debian.org/debian >/var/log/nbml-ci/debootstrap.log 2>&1 \
            || { tail -n 30 /var/log/nbml-ci/debootstrap.log >&2; return 1 2>/dev/null || exit 1; }
        # Trust the same extra CAs as this machine (a TLS-intercepting egress proxy), so pip works in builds.
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            cp /usr/local/share/ca-certificates/*.crt "$_nbml_root/usr/local/share/ca-certificates/"
            chroot "$_nbml_root" update-ca-certificates >/dev/null 2>&1
        fi
        # Smaller image: package lists, docs and caches are not needed at run time.
        rm -rf "$_nbml_root"/var/cache/apt/archives/*.deb "$_nbml_root"/var/lib/apt/lists/* \
            "$_nbml_root"/usr/share/doc/* "$_nbml_root"/usr/share/man/* "$_nbml_root"/usr/share/locale/*
        tar -C "$_nbml_root" -cf "$_nbml_tar.tmp" . && mv "$_nbml_tar.tmp" "$_nbml_tar"
        rm -rf "$_nbml_root"
    fi
    docker import --change 'CMD ["python3"]' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        "$_nbml_tar" "$NBML_DOCKER_IMAGE" >/dev/null
fi
echo "docker engine ready: $(docker version --format '{{.Server.Version}}'), base image $NBML_DOCKER_IMAGE"
