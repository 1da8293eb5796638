#!/usr/bin/env bash
# The project's test command: installs what the tests need on a Debian 12 machine with the .NET 10
# SDK (ffmpeg and libav's headers for the decode worker; PostgreSQL 15 for the library's store tests; Debian's python3-torchvision and python3-onnx for the PyTorch-import and ONNX-checker
# tests; chromium for the Swagger UI test; nginx for the gateway test; the dotnet local tools), fetches
# the real footage the Core tests embed (tools/fetch-footage.sh: Debian packages unpacked, not installed, into
# ~/.cache/cvrl/footage), checks formatting, builds and runs every test project, builds the Dockerfile's
# CPU image from local bases and runs it (podman, debootstrap: tools/container/check.sh), and ends with one
# summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
/usr/bin/python3 -c "import torchvision" >/dev/null 2>&1 || missing+=(python3-torchvision)
/usr/bin/python3 -c "import onnx" >/dev/null 2>&1 || missing+=(python3-onnx)
# Headless Chromium for the Swagger UI end-to-end test.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The decode worker (src/decode-worker, built by Core's build with make) compiles against libav's headers.
pkg-config --exists libavformat libavcodec libavfilter libswscale libavutil 2>/dev/null \
  || missing+=(pkg-config libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev libavutil-dev)
command -v make >/dev/null 2>&1 && command -v cc >/dev/null 2>&1 || missing+=(make gcc libc6-dev)
# nginx for the gateway test. The test runs its own nginx process on a free loopback port with its own
# config; it never uses the package's service (which apt starts where an init system allows it).
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
# PostgreSQL's server binaries for the video library's contract and replica tests: each test run starts its
# own server (initdb + pg_ctl as the postgres user, in a temporary folder, on a Unix socket only), never the
# package's service.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql-15)
# podman and debootstrap build and check the container image (tools/container/check.sh); curl probes it.
command -v podman >/dev/null 2>&1 || missing+=(podman fuse-overlayfs uidmap)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Real footage from Debian packages for RealFootageTests, cached outside the clone (~100 MB once).
bash tools/fetch-footage.sh >/dev/null

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# Local tools (.config/dotnet-tools.json): the NSwag CLI the generated-client end-to-end test runs.
dotnet tool restore
dotnet restore CvrlServe.sln
dotnet format CvrlServe.sln --verify-no-changes --no-restore
dotnet build CvrlServe.sln --no-restore -c Release

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test CvrlServe.sln --no-build -c Release 2>&1 | tee "$log" || status=$?

# The container ships ONNX Runtime's GPU flavour: build Core against it and run the inference tests
# (CUDA cannot load here, so they exercise its CPU fallback), so that build cannot rot.
dotnet test tests/CvrlServe.Core.Tests -c Release -p:OnnxRuntimeFlavor=Gpu --artifacts-path artifacts/gpu-flavour \
  --filter "FullyQualifiedName~CvrlServe.Core.Tests.Inference" 2>&1 | tee -a "$log" || status=$?

# The Dockerfile's CPU image, built from local stand-in bases and run in a chroot (tools/container/check.sh).
container="not run"
if bash tools/container/check.sh 2>&1 | tee -a "$log"; then container="passed"; else container="FAILED"; status=1; fi

# dotnet test prints one "Passed!/Failed! - Failed: F, Passed: P, ..." line per test project.
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
skipped=$(grep -oE 'Skipped: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
echo "Tests: $passed passed, $failed failed, $skipped skipped; container check: $container"
exit "$status"
