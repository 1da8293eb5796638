#!/usr/bin/env bash
# Local stand-ins for the Dockerfile's base images, for a machine that reaches no container registry
# (this project's CI). Prints two build arguments for `podman build`:
#   SDK_IMAGE=localhost/cvrl-sdk:KEY   a Debian 12 root (debootstrap minbase) + this machine's .NET SDK, and
#                                      this machine's CA bundle (SSL_CERT_FILE) so that restore inside the
#                                      build reaches NuGet the way this machine does (e.g. through a
#                                      TLS-inspecting egress proxy)
#   CPU_BASE=localhost/cvrl-aspnet:KEY the same root + only the .NET and ASP.NET Core runtimes
# KEY covers this script and the SDK's version, so a changed recipe builds new bases. The debootstrap
# root is cached in ${CVRL_CONTAINER_CACHE:-~/.cache/cvrl/container}; on a new machine everything builds
# from nothing (about two minutes). Needs root, debootstrap and podman.
# These stand in for mcr.microsoft.com/dotnet/{sdk,aspnet}:10.0, which are Ubuntu 24.04 (ffmpeg 6.1); the
# local ones are Debian 12 (ffmpeg 5.1). See docs/deployment.md for what that does not prove.
set -euo pipefail

cache="${CVRL_CONTAINER_CACHE:-$HOME/.cache/cvrl/container}"
dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
sdk_version="$(dotnet --version)"
host_ca=/etc/ssl/certs/ca-certificates.crt
key="$( (cat "$0"; echo "$sdk_version"; cat "$host_ca" 2>/dev/null) | sha256sum | cut -c1-12)"
# What the .NET images carry besides libc: certificates, time zones, OpenSSL, zlib, ICU (the SDK needs it).
packages=ca-certificates,tzdata,libssl3,zlib1g,libicu72
rootfs="$cache/rootfs-bookworm-$(echo "minbase $packages" | sha256sum | cut -c1-12)"
podman=(podman --cgroup-manager=cgroupfs)

log() { echo "local-bases: $*" >&2; }

if [ ! -f "$rootfs/.complete" ]; then
  rm -rf "$rootfs" "$rootfs.partial"
  mkdir -p "$cache"
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  log "debootstrap bookworm (minbase) from $mirror"
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs.partial" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs.partial"/var/cache/apt/archives/*.deb "$rootfs.partial"/var/lib/apt/lists/*
  mv "$rootfs.partial" "$rootfs"
  touch "$rootfs/.complete"
fi

# One tar of the root plus the .NET folder placed at /usr/share/dotnet (and /usr/bin/dotnet), imported.
import_image() {
  local name="$1" env="$2"; shift 2
  if "${podman[@]}" image exists "$name"; then
    return
  fi
  log "importing $name"
  local stage
  stage="$(mktemp -d)"
  mkdir -p "$stage/usr/bin"
  ln -s ../share/dotnet/dotnet "$stage/usr/bin/dotnet"
  mkdir -p "$stage/etc/ssl/build-host"
  cp "$host_ca" "$stage/etc/ssl/build-host/ca-certificates.crt"
  tar -c -f - \
      -C "$rootfs" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* --exclude=./.complete . \
      -C "$stage" ./usr/bin/dotnet $([ -n "$env" ] && echo ./etc/ssl/build-host) \
      -C "$dotnet_root/.." --transform "s,^\./$(basename "$dotnet_root"),./usr/share/dotnet," "$@" \
    | "${podman[@]}" import -q --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV DOTNET_RUNNING_IN_CONTAINER=true" --change "ENV ASPNETCORE_HTTP_PORTS=8080" \
        ${env:+--change "ENV $env"} - "$name" >/dev/null
  rm -rf "$stage"
}

base="./$(basename "$dotnet_root")"
import_image "localhost/cvrl-sdk:$key" "SSL_CERT_FILE=/etc/ssl/build-host/ca-certificates.crt" "$base"
import_image "localhost/cvrl-aspnet:$key" "" \
  --exclude="$base/sdk" --exclude="$base/sdk-manifests" --exclude="$base/packs" --exclude="$base/templates" \
  --exclude="$base/metadata" --exclude="$base/library-packs" --exclude="$base/shared/Microsoft.WindowsDesktop.App" "$base"

echo "SDK_IMAGE=localhost/cvrl-sdk:$key"
echo "CPU_BASE=localhost/cvrl-aspnet:$key"
