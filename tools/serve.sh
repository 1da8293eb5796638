#!/usr/bin/env bash
# Runs the CvrlServe HTTP API on the models in models/ (default model synthmotion-cvrl).
# On a fresh Debian 12 machine with the .NET 10 SDK: installs ffmpeg and the decode worker's build needs
# with apt-get when missing (sudo when not root), builds src/CvrlServe.Api in Release (the worker with it)
# and runs it in the foreground (Ctrl+C stops it).
#
#   bash tools/serve.sh [ARGS...]          # ARGS go to the server, e.g. --Cvrl:MaxUploadBytes=1048576
#
# Environment:
#   CVRL_URL       where to listen (default http://127.0.0.1:5000)
#   CVRL_PROVIDER  Cpu (default) or Cuda (tries CUDA, falls back to the CPU and says why)
#   CVRL_DATA      the writable data folder: probes trained at runtime, uploads in flight (default ./data)
#   CVRL_MODEL     the default model (default synthmotion-cvrl)
#   Cvrl__*        any other setting, e.g. Cvrl__Keys__Admin__0=<a key of 16+ characters> for the admin endpoints
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
url="${CVRL_URL:-http://127.0.0.1:5000}"
provider="${CVRL_PROVIDER:-Cpu}"
data="${CVRL_DATA:-$root/data}"
model="${CVRL_MODEL:-synthmotion-cvrl}"

if ! command -v dotnet >/dev/null; then
  echo "serve.sh: the .NET 10 SDK is needed (https://learn.microsoft.com/dotnet/core/install/linux-debian)" >&2
  exit 1
fi

# ffmpeg, and libav's headers with a C compiler for the decode worker (docs/decode-worker.md; without
# them the build goes on and the service decodes with ffmpeg processes, saying so in /v1/models).
missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
pkg-config --exists libavformat libavcodec libavfilter libswscale libavutil 2>/dev/null \
  || missing+=(pkg-config libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev libavutil-dev)
command -v make >/dev/null && command -v cc >/dev/null || missing+=(make gcc libc6-dev)
if ((${#missing[@]})); then
  echo "serve.sh: installing ${missing[*]} with apt-get" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "serve.sh: ${missing[*]} missing and neither root nor sudo is available" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "serve.sh: building src/CvrlServe.Api (Release)" >&2
dotnet build "$root/src/CvrlServe.Api" -c Release -nologo -v quiet >&2

mkdir -p "$data"
data="$(cd "$data" && pwd)"
echo "CvrlServe on ${url%%;*} (Swagger UI: ${url%%;*}/swagger), model $model, provider $provider, data $data" >&2

# Run from the build output so the server reads its appsettings.json; folders are absolute.
cd "$root/src/CvrlServe.Api/bin/Release/net10.0"
export ASPNETCORE_URLS="$url"
export Cvrl__ModelsFolder="$root/models"
export Cvrl__DataFolder="$data"
export Cvrl__Provider="$provider"
export Cvrl__DefaultModel="$model"
exec dotnet CvrlServe.Api.dll "$@"
