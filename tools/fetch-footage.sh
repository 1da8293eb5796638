#!/usr/bin/env bash
# Real footage for RealFootageTests: sample videos shipped in Debian packages, downloaded with
# `apt-get download` and unpacked with `dpkg -x` (nothing is installed). The cache lives outside the
# repository; a package already unpacked there is not downloaded again.
#
#   tools/fetch-footage.sh [DEST]     DEST defaults to $CVRL_FOOTAGE, else ${XDG_CACHE_HOME:-$HOME/.cache}/cvrl/footage
#
# Prints the video files found under DEST (by extension), one per line.
set -euo pipefail

dest="${1:-${CVRL_FOOTAGE:-${XDG_CACHE_HOME:-$HOME/.cache}/cvrl/footage}}"
packages=(opencv-doc python3-imageio golang-github-gabriel-vasile-mimetype-dev)
extensions=(mp4 avi mkv webm mov ogv ogg flv 3gp asf wmv mpg mpeg ts m4v gif rmvb rm)

mkdir -p "$dest/debs" "$dest/unpacked"
dest="$(cd "$dest" && pwd)"

download() {
  local package="$1"
  # apt-get download writes into the current folder; the package lists are refreshed only when the
  # first try fails (stale or missing lists), since an update costs time and network.
  if ! (cd "$dest/debs" && apt-get download "$package" >&2); then
    echo "apt-get download $package failed; running apt-get update and trying again" >&2
    apt-get update >&2
    (cd "$dest/debs" && apt-get download "$package" >&2)
  fi
}

for package in "${packages[@]}"; do
  marker="$dest/unpacked/$package/.unpacked"
  if [[ -f "$marker" ]]; then
    continue
  fi

  shopt -s nullglob
  debs=("$dest/debs/${package}"_*.deb)
  shopt -u nullglob
  if (( ${#debs[@]} == 0 )); then
    download "$package"
    shopt -s nullglob
    debs=("$dest/debs/${package}"_*.deb)
    shopt -u nullglob
  fi

  rm -rf "$dest/unpacked/$package"
  mkdir -p "$dest/unpacked/$package"
  dpkg -x "${debs[0]}" "$dest/unpacked/$package"
  touch "$marker"
  rm -f "${debs[@]}" # the unpacked tree and its marker are the cache
done

pattern=()
for ext in "${extensions[@]}"; do
  pattern+=(-o -iname "*.$ext")
done

find "$dest/unpacked" -type f \( "${pattern[@]:1}" \) | LC_ALL=C sort
