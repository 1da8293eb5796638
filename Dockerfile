# syntax=docker/dockerfile:1
# CvrlServe images. Two targets:
#   docker build --target gpu -t cvrlserve:gpu .   # CUDA 13 + cuDNN base, ONNX Runtime's GPU flavour (the default)
#   docker build --target cpu -t cvrlserve:cpu .   # the plain ASP.NET Core runtime base, ONNX Runtime's CPU flavour
# Both run the service as uid 10001 on port 8080 with the default model baked in at /app/models (mount a
# volume there to override it) and a writable /data volume (probes trained at runtime, jobs, uploads in
# flight). Configuration is by environment variables, e.g. -e Cvrl__Keys__Admin__0=... (see README).
# The image also carries a libtorch-free `cvrl` at /app/cvrl (entry point for batch embedding:
# `cvrl embed`) and the decode worker at /usr/local/bin/cvrl-decode-worker. No image carries libtorch. Base images are build arguments, so a mirror or a local base can
# stand in for the public ones (tools/container/build.sh does that on a machine without a registry).

ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG CPU_BASE=mcr.microsoft.com/dotnet/aspnet:10.0
ARG GPU_BASE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

# ---- build: restore in its own cached layer (project files and build props only), then publish ----
FROM ${SDK_IMAGE} AS sources
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NUGET_CERT_REVOCATION_MODE=offline
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY build/ build/
COPY tools/container/publish.sh tools/container/
COPY src/CvrlServe.Core/CvrlServe.Core.csproj src/CvrlServe.Core/
COPY src/CvrlServe.Api/CvrlServe.Api.csproj src/CvrlServe.Api/
COPY src/CvrlServe.Training/CvrlServe.Training.csproj src/CvrlServe.Training/

FROM sources AS build-cpu
RUN sh tools/container/publish.sh restore Cpu
COPY src/ src/
RUN sh tools/container/publish.sh publish Cpu /out/app

FROM sources AS build-gpu
RUN sh tools/container/publish.sh restore Gpu
COPY src/ src/
RUN sh tools/container/publish.sh publish Gpu /out/app

# ---- the decode worker (src/decode-worker), compiled against the libav of the base it runs on ----
# It reproduces ffmpeg 5.1's command line (Debian 12's libav); built against another libav major it
# compiles to a stub that refuses at start, and the service decodes with ffmpeg processes and says why
# in GET /v1/models. So the Ubuntu 24.04 bases (FFmpeg 6.1) run the command-line path for now.
FROM ${CPU_BASE} AS worker-cpu
COPY tools/container/worker-deps.sh /tmp/
RUN sh /tmp/worker-deps.sh
COPY src/decode-worker/ /src/decode-worker/
RUN make -C /src/decode-worker OUT=/out

FROM ${GPU_BASE} AS worker-gpu
COPY tools/container/worker-deps.sh /tmp/
RUN sh /tmp/worker-deps.sh
COPY src/decode-worker/ /src/decode-worker/
RUN make -C /src/decode-worker OUT=/out

# ---- what both runtime targets add to their base ----
# ffmpeg from the base's distribution, a non-root user, the app, the default model, the data volume.
FROM ${CPU_BASE} AS cpu
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cvrl \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=build-cpu /out/app /app
COPY --from=worker-cpu /out/cvrl-decode-worker /usr/local/bin/cvrl-decode-worker
COPY models/ /app/models/
ENV ASPNETCORE_HTTP_PORTS=8080 \
    DOTNET_RUNNING_IN_CONTAINER=true \
    Cvrl__ModelsFolder=/app/models \
    Cvrl__DataFolder=/data \
    Cvrl__Provider=Cpu \
    PATH="/app/cvrl:${PATH}"
VOLUME ["/data"]
USER 10001:10001
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["dotnet", "/app/CvrlServe.Api.dll", "--health-check"]
ENTRYPOINT ["dotnet", "/app/CvrlServe.Api.dll"]

# The GPU base has no .NET: the ASP.NET Core runtime comes from the CPU base image (same files either way).
FROM ${CPU_BASE} AS aspnet-runtime

# OpenSSL is what .NET hashes with (SHA-256 of uploads and models): libssl3t64 on Ubuntu 24.04, libssl3 on Debian 12.
FROM ${GPU_BASE} AS gpu
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && libssl="$(apt-cache show libssl3t64 >/dev/null 2>&1 && echo libssl3t64 || echo libssl3)" \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates tzdata "$libssl" \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cvrl \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=aspnet-runtime /usr/share/dotnet /usr/share/dotnet
RUN ln -sf /usr/share/dotnet/dotnet /usr/bin/dotnet
COPY --from=build-gpu /out/app /app
COPY --from=worker-gpu /out/cvrl-decode-worker /usr/local/bin/cvrl-decode-worker
COPY models/ /app/models/
ENV ASPNETCORE_HTTP_PORTS=8080 \
    DOTNET_RUNNING_IN_CONTAINER=true \
    Cvrl__ModelsFolder=/app/models \
    Cvrl__DataFolder=/data \
    Cvrl__Provider=Cuda \
    Cvrl__Nvdec=true \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    PATH="/app/cvrl:${PATH}"
VOLUME ["/data"]
USER 10001:10001
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
  CMD ["dotnet", "/app/CvrlServe.Api.dll", "--health-check"]
ENTRYPOINT ["dotnet", "/app/CvrlServe.Api.dll"]
