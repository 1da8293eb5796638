#!/usr/bin/env bash
# Builds the Dockerfile's CPU image on this machine and runs it, without a registry or a container runtime:
#   1. local stand-ins for the base images (tools/container/local-bases.sh: debootstrap + this machine's .NET);
#   2. `podman build --isolation=chroot --format docker --target cpu` (the Docker format keeps HEALTHCHECK);
#   3. checks the image's config: HEALTHCHECK, non-root user, entrypoint, no libtorch, the default model,
#      the decode worker;
#   4. mounts the image (`podman image mount`) and runs its entrypoint in a chroot as the image's user with
#      the image's environment (private mount namespace: tmpfs /dev with null/zero/random/urandom, proc,
#      tmpfs /tmp, a host folder as the /data volume), then: the image's HEALTHCHECK command exits 0,
#      /v1/models says uploads go to the decode worker,
#      /health/ready answers 200, a committed sample embeds through /v1/embeddings, the image's `cvrl embed`
#      gives the same embedding, the sample is stored in the library and found by search, a training command of that cvrl refuses clearly (no libtorch), and SIGTERM
#      ends the service with exit 0.
# `podman run` cannot work here (crun cannot set rlimits in this sandbox), hence the chroot. Needs root,
# podman, debootstrap, curl, python3. Prints "container check: passed" or fails with the reason.
#
#   bash tools/container/check.sh        the CPU target (what CI runs)
#   bash tools/container/check.sh gpu    the GPU target on a stand-in GPU base WITHOUT CUDA (the local
#                                        runtime base): checks its layering, the GPU flavour of ONNX Runtime
#                                        and its fallback to the CPU; proves nothing about CUDA. Not in CI:
#                                        the GPU flavour's packages are ~1 GB.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
target="${1:-cpu}"
case "$target" in cpu|gpu) ;; *) echo "usage: check.sh [cpu|gpu]" >&2; exit 2 ;; esac
image="localhost/cvrlserve:$target-check"
podman=(podman --cgroup-manager=cgroupfs)
fail() { echo "container check: FAILED: $*" >&2; exit 1; }

if [ "${CVRL_IN_PRIVATE_NS:-}" != 1 ]; then
  start=$SECONDS
  eval "$(bash tools/container/local-bases.sh)"
  echo "container check: bases ready ($((SECONDS - start)) s)" >&2
  log="$(mktemp)"
  if ! "${podman[@]}" build --isolation=chroot --format docker --target "$target" \
      --build-arg SDK_IMAGE="$SDK_IMAGE" --build-arg CPU_BASE="$CPU_BASE" --build-arg GPU_BASE="$CPU_BASE" \
      -t "$image" . >"$log" 2>&1; then
    tail -40 "$log" >&2
    fail "podman build"
  fi
  rm -f "$log"
  echo "container check: image built ($((SECONDS - start)) s)" >&2
  export CVRL_IN_PRIVATE_NS=1
  exec unshare --mount --propagation private bash "$0" "$target"
fi

# ---- 3. the image's config ----
config="$("${podman[@]}" image inspect "$image")"
read_config() { python3 -c "import json,sys; i=json.loads(sys.stdin.read())[0]; c=i['Config']; $1" <<<"$config"; }
# The Docker image format keeps HEALTHCHECK (podman shows it beside Config); OCI drops it.
manifest="$(read_config "print(i.get('ManifestType',''))")"
[[ "$manifest" == *docker* ]] || fail "the image is not in the Docker format ($manifest): HEALTHCHECK would be lost"
health="$(read_config "print(json.dumps((i.get('Healthcheck') or {}).get('Test')))")"
[ "$health" = '["CMD", "dotnet", "/app/CvrlServe.Api.dll", "--health-check"]' ] || fail "HEALTHCHECK missing or unexpected: $health"
user="$(read_config "print(c.get('User',''))")"
uid="${user%%:*}"; gid="${user##*:}"
[[ "$uid" =~ ^[0-9]+$ && "$uid" != 0 ]] || fail "the image runs as '$user', not a non-root uid"
entrypoint="$(read_config "print(' '.join(c['Entrypoint']))")"
workdir="$(read_config "print(c.get('WorkingDir') or '/')")"
mapfile -t image_env < <(read_config "print('\n'.join(c.get('Env') or []))")

root="$("${podman[@]}" image mount "$image")"
cleanup() {
  [ -n "${server:-}" ] && kill -9 "$server" 2>/dev/null || true
  # Everything still running inside the image's root (ffmpeg children of a killed service, say).
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ] && kill -9 "${proc#/proc/}" 2>/dev/null || true
  done
  for m in data tmp proc dev; do umount -l "$root/$m" 2>/dev/null || true; done
  "${podman[@]}" image unmount "$image" >/dev/null 2>&1 || true
  [ -n "${data:-}" ] && rm -rf "$data"
}
trap cleanup EXIT
found="$(find "$root" -xdev \( -name 'libtorch*' -o -name 'libLibTorchSharp*' \) -print -quit)"
[ -z "$found" ] || fail "libtorch in the image: ${found#"$root"}"
model="$(ls "$root/app/models" | grep -v README | head -1)"
[ -f "$root/app/models/$model/encoder.onnx" ] || fail "no default model under /app/models"
[ -x "$root/app/cvrl/cvrl" ] || fail "no cvrl at /app/cvrl"
[ -x "$root/usr/local/bin/cvrl-decode-worker" ] || fail "no decode worker at /usr/local/bin/cvrl-decode-worker"

# ---- 4. run it in a chroot ----
mount -t tmpfs -o mode=755 tmpfs "$root/dev"
for dev in "null 1 3" "zero 1 5" "random 1 8" "urandom 1 9"; do
  set -- $dev
  mknod -m 666 "$root/dev/$1" c "$2" "$3"
done
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
data="$(mktemp -d)"
chown "$uid:$gid" "$data"
mount --bind "$data" "$root/data"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
in_image() { chroot --userspec="$uid:$gid" "$root" /usr/bin/env -i "${image_env[@]}" ASPNETCORE_HTTP_PORTS="$port" /usr/bin/env -C "$workdir" "$@"; }

# exec: $! is then the service itself (chroot and env exec in turn), so signals reach it.
(exec chroot --userspec="$uid:$gid" "$root" /usr/bin/env -i "${image_env[@]}" ASPNETCORE_HTTP_PORTS="$port" \
  /usr/bin/env -C "$workdir" $entrypoint >"$data/server.log" 2>&1) &
server=$!
status=""
for _ in $(seq 1 120); do
  status="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready" || true)"
  [ "$status" = 200 ] && break
  kill -0 "$server" 2>/dev/null || { tail -30 "$data/server.log" >&2; fail "the entrypoint exited"; }
  sleep 1
done
[ "$status" = 200 ] || { tail -30 "$data/server.log" >&2; fail "/health/ready answered '$status'"; }
in_image dotnet /app/CvrlServe.Api.dll --health-check >/dev/null || fail "the image's HEALTHCHECK command failed"

# The local bases are Debian 12 (libav 59, what the worker reproduces): uploads must go to the worker.
curl -sf "http://127.0.0.1:$port/v1/models" | python3 -c '
import json, sys
answer = json.load(sys.stdin)
for m in answer["models"]:
    reason = " (" + m["providerReason"].strip() + ")" if m.get("providerReason") else ""
    print("container check: model", m["name"], "on", m.get("provider"), reason)
decoder = answer["decoder"]
print("container check: uploads decoded by", decoder["path"], "(" + decoder["detail"] + ")")
sys.exit(0 if decoder["path"] == "worker" else 1)
' || fail "/v1/models, or the decode worker is not in use"

sample="$(find samples -name '*.mp4' | sort | head -1)"
curl -sf -F "file=@$sample" "http://127.0.0.1:$port/v1/embeddings" -o "$data/service.json" || fail "embedding $sample through the service"
cp "$sample" "$data/sample.mp4"
chmod 644 "$data/sample.mp4"
in_image cvrl embed --cpu --model "/app/models/$model" /data/sample.mp4 >"$data/cli.json" 2>"$data/cli.err" \
  || { cat "$data/cli.err" >&2; fail "cvrl embed in the image"; }
python3 - "$data/service.json" "$data/cli.json" "$root/app/models/$model/encoder.json" <<'PY' || fail "embeddings disagree"
import json, math, sys
service = json.load(open(sys.argv[1]))
cli = json.loads(open(sys.argv[2]).read().splitlines()[0])
dimension = json.load(open(sys.argv[3]))["output"]["dimension"]
a, b = service["embedding"], cli["embedding"]
assert len(a) == dimension == len(b), (len(a), len(b), dimension)
assert service["modelId"] == cli["modelId"], (service["modelId"], cli["modelId"])
cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
assert cos > 0.9999, cos
print(f"container check: service and cvrl embeddings agree (dimension {dimension}, cosine {cos:.6f})")
PY

# The video library in the image (SQLite in the /data volume, its native library from the publish): the
# sample stored, then found by search as its own nearest neighbour when asked to include itself.
curl -sf -F "file=@$sample" -F tags=check "http://127.0.0.1:$port/v1/videos" -o "$data/stored.json" || fail "storing $sample in the library"
stored="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$data/stored.json")"
curl -sf -H 'Content-Type: application/json' -d "{\"videoId\": \"$stored\", \"excludeSelf\": false, \"k\": 1}" "http://127.0.0.1:$port/v1/search" \
  | python3 -c 'import json, sys; hits = json.load(sys.stdin)["hits"]; sys.exit(0 if hits and hits[0]["videoId"] == sys.argv[1] else 1)' "$stored" \
  || fail "searching the library"
[ -s "$data/library.db" ] || fail "the library's SQLite file is not in the /data volume"
echo "container check: the library stores and searches (SQLite in /data)"

# The image's cvrl has no libtorch: a training command says so (exit 1) instead of failing to load it.
code=0
in_image cvrl init --arch r3d18 --out /tmp/init >/dev/null 2>"$data/init.err" || code=$?
[ "$code" = 1 ] && grep -q "published without" "$data/init.err" || { cat "$data/init.err" >&2; fail "cvrl init in the image: exit $code"; }

kill -TERM "$server"
code=0
wait "$server" || code=$?
server=""
[ "$code" = 0 ] || { tail -30 "$data/server.log" >&2; fail "the service exited $code after SIGTERM"; }
echo "container check: passed (image $image, user $uid, model $model)"
