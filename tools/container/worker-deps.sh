#!/bin/sh
# Run in the Dockerfile's worker stages: what compiling src/decode-worker needs on a Debian or Ubuntu base
# (a C compiler, make, pkg-config and the base's own libav headers; the worker is built against them).
set -eu
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config \
  libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev libavutil-dev
rm -rf /var/lib/apt/lists/*
