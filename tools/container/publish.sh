#!/bin/sh
# Run inside the Dockerfile's build stages (and usable on a host with the .NET 10 SDK):
#   publish.sh restore FLAVOR        restore the service and the libtorch-free cvrl for linux-x64
#   publish.sh publish FLAVOR OUT    publish them to OUT (the service) and OUT/cvrl (the CLI)
# FLAVOR is ONNX Runtime's: Cpu or Gpu. Fails if any libtorch library reached OUT.
set -eu
step="$1"
flavor="$2"
case "$flavor" in Cpu|Gpu) ;; *) echo "publish.sh: flavor must be Cpu or Gpu" >&2; exit 2 ;; esac
# The decode worker is compiled in its own stage against the runtime base's libav, not here.
common="-r linux-x64 -p:OnnxRuntimeFlavor=$flavor -p:SkipDecodeWorker=true"
case "$step" in
  restore)
    dotnet restore src/CvrlServe.Api $common
    dotnet restore src/CvrlServe.Training $common -p:CvrlWithoutLibTorch=true
    ;;
  publish)
    out="$3"
    dotnet publish src/CvrlServe.Api -c Release $common --self-contained false --no-restore -p:UseAppHost=false -o "$out"
    dotnet publish src/CvrlServe.Training -c Release $common --self-contained false --no-restore \
      -p:CvrlWithoutLibTorch=true -p:UseAppHost=false -o "$out/cvrl"
    printf '#!/bin/sh\nexec dotnet /app/cvrl/cvrl.dll "$@"\n' > "$out/cvrl/cvrl"
    chmod 755 "$out/cvrl/cvrl"
    if find "$out" -name 'libtorch*' -o -name 'libLibTorchSharp*' | grep .; then
      echo "publish.sh: libtorch reached the published service" >&2
      exit 1
    fi
    ;;
  *) echo "usage: publish.sh restore|publish Cpu|Gpu [OUT]" >&2; exit 2 ;;
esac
