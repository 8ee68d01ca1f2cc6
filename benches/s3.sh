#!/usr/bin/env bash
# Issue 12 bench: gatehouse on S3 vs distribution 2.8.2 on S3, both against one moto_server (PyPI moto[server])
# on loopback, each in its own bucket, both with their defaults (blob GETs redirect to presigned URLs).
#
#   bash benches/s3.sh
#
#  - skopeo push and pull of a LAYER_MIB (256) MiB single-layer image, best of RUNS, arms alternating, skopeo's
#    blob-info cache deleted before every copy. Target: gatehouse's time <= distribution's, both ways.
#  - GET manifest by tag, WRK_CONNS (32) connections, no auth. Target >= 3x distribution. gatehouse with its
#    default tag cache (GATEHOUSE_S3_TAG_CACHE_TTL=1s: a tag is read from the bucket at most once a second) and,
#    as a second figure, with GATEHOUSE_S3_TAG_CACHE_TTL=0 (the tag's link read on every GET, the body cached).
#  - gatehouse's peak RSS (VmHWM) during a BIG_MIB (1024) MiB chunked push (CHUNK_MIB (64) MiB PATCHes with
#    Content-Range, then the PUT), measured on a fresh gatehouse. Target < 128 MiB. The same push to distribution
#    (time ratio), and with OLD_GATEHOUSE_BIN set, to that binary too (on a bucket of its own: before/after).
#  - A SMALL_MIB (64) MiB push in 1 MiB chunks (smaller than S3's 5 MiB part), the same three ways.
# moto is a Python server: absolute times are moto's more than either registry's; read the ratios.
#
# Env: GATEHOUSE_BENCH_DIR (default /tmp/gatehouse-bench), RUNS (3), LAYER_MIB (256), BIG_MIB (1024),
#      CHUNK_MIB (64), SMALL_MIB (64), WRK_DURATION (10s), WRK_CONNS (32), WRK_THREADS (2), GATEHOUSE_BIN, OLD_GATEHOUSE_BIN,
#      BENCH_KEEP=1.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-3}
LAYER_MIB=${LAYER_MIB:-256}
BIG_MIB=${BIG_MIB:-1024}
CHUNK_MIB=${CHUNK_MIB:-64}
SMALL_MIB=${SMALL_MIB:-64}
TAG=v1
BLOB_CACHE=/var/lib/containers/cache/blob-info-cache-v1.boltdb

bench_init s3
command -v moto_server >/dev/null || die "moto_server is not installed (python3 -m pip install 'moto[server]==5.2.1')"
command -v skopeo >/dev/null || die "skopeo is not installed"
ensure_gatehouse_built

MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$RUN_DIR/moto.log" 2>&1 &
MOTO_PID=$!
BENCH_PIDS+=("$MOTO_PID")
wait_port "$MOTO_PORT" "$MOTO_PID" 60 || die "moto_server did not start"
S3="http://127.0.0.1:$MOTO_PORT"
for b in gh-bench dist-bench gh-big; do
    curl -sS -f -o /dev/null -X PUT "$S3/$b" || die "creating bucket $b"
done
log "moto_server on $S3 (pid $MOTO_PID)"

# start_dist_s3 BUCKET: distribution 2.8.2 with storage.s3 on BUCKET; sets DIST_PORT.
start_dist_s3() {
    local port cfg="$RUN_DIR/dist-s3.yml"
    port=$(free_port)
    cat >"$cfg" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  s3:
    region: us-east-1
    bucket: $1
    regionendpoint: $S3
    accesskey: bench
    secretkey: bench
    forcepathstyle: true
    secure: false
    v4auth: true
    rootdirectory: /registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: bench-secret
YML
    env -i PATH="$PATH" HOME="${HOME:-/root}" "$DIST_BIN" serve "$cfg" >"$RUN_DIR/dist-s3.log" 2>&1 &
    DIST_PID=$!
    BENCH_PIDS+=("$DIST_PID")
    wait_port "$port" "$DIST_PID" || {
        tail -20 "$RUN_DIR/dist-s3.log" >&2
        die "distribution on S3 did not start"
    }
    DIST_PORT=$port
}

# start_gh_s3 NAME BUCKET [VAR=VALUE ...]: gatehouse (no auth) on BUCKET, configured by registry:2's variables
# (and the extra ones given); sets GH_PORT, GH_PID.
start_gh_s3() {
    local name=$1 bucket=$2
    shift 2
    local port cfg="$RUN_DIR/$name.toml"
    port=$(free_port)
    printf '[server]\nthreads = 2\ngrace_period_seconds = 1\n\n[metrics]\nlisten = ""\n' >"$cfg"
    env -i PATH="$PATH" HOME="${HOME:-/root}" GATEHOUSE_LOG="${GATEHOUSE_LOG:-warn}" \
        REGISTRY_HTTP_ADDR="127.0.0.1:$port" REGISTRY_AUTH=none REGISTRY_STORAGE_DELETE_ENABLED=true \
        REGISTRY_STORAGE=s3 REGISTRY_STORAGE_S3_REGION=us-east-1 REGISTRY_STORAGE_S3_BUCKET="$bucket" \
        REGISTRY_STORAGE_S3_REGIONENDPOINT="$S3" REGISTRY_STORAGE_S3_ACCESSKEY=bench \
        REGISTRY_STORAGE_S3_SECRETKEY=bench REGISTRY_STORAGE_S3_FORCEPATHSTYLE=true \
        REGISTRY_STORAGE_S3_SECURE=false REGISTRY_STORAGE_S3_ROOTDIRECTORY=/registry "$@" \
        "$GATEHOUSE_BIN" serve --config "$cfg" >"$RUN_DIR/$name.log" 2>&1 &
    GH_PID=$!
    BENCH_PIDS+=("$GH_PID")
    wait_port "$port" "$GH_PID" || {
        tail -20 "$RUN_DIR/$name.log" >&2
        die "gatehouse $name on S3 did not start"
    }
    GH_PORT=$port
}

start_dist_s3 dist-bench
start_gh_s3 gh gh-bench
GH=$GH_PID
DIST_HOST="127.0.0.1:$DIST_PORT"
GATE_HOST="127.0.0.1:$GH_PORT"
OCI=$(oci_image "$LAYER_MIB")

skopeo_time() {
    rm -f "$BLOB_CACHE"
    local t0 t1
    t0=$(now_s)
    skopeo copy -q "$@" >"$RUN_DIR/skopeo.out" 2>&1 || {
        cat "$RUN_DIR/skopeo.out" >&2
        die "skopeo copy $* failed"
    }
    t1=$(now_s)
    calc "$t1 - $t0" "%.3f"
}

push_d=() push_g=() pull_d=() pull_g=()
for i in $(seq "$RUNS"); do
    log "skopeo push $LAYER_MIB MiB run $i/$RUNS: distribution, then gatehouse"
    push_d+=("$(skopeo_time --dest-tls-verify=false "oci:$OCI:$TAG" "docker://$DIST_HOST/bench/push$i:$TAG")")
    push_g+=("$(skopeo_time --dest-tls-verify=false "oci:$OCI:$TAG" "docker://$GATE_HOST/bench/push$i:$TAG")")
done
for i in $(seq "$RUNS"); do
    log "skopeo pull $LAYER_MIB MiB run $i/$RUNS"
    rm -rf "$RUN_DIR/pull"
    pull_d+=("$(skopeo_time --src-tls-verify=false "docker://$DIST_HOST/bench/push1:$TAG" "oci:$RUN_DIR/pull:$TAG")")
    rm -rf "$RUN_DIR/pull"
    pull_g+=("$(skopeo_time --src-tls-verify=false "docker://$GATE_HOST/bench/push1:$TAG" "oci:$RUN_DIR/pull:$TAG")")
done
rm -rf "$RUN_DIR/pull" "$BLOB_CACHE"

M_PATH="/v2/bench/push1/manifests/$TAG"
read -r md_rps md_p50 md_p99 _ _ <<<"$(run_load distribution "http://$DIST_HOST$M_PATH" GET "Accept: $MANIFEST_ACCEPT")"
read -r mg_rps mg_p50 mg_p99 _ _ <<<"$(run_load gatehouse "http://$GATE_HOST$M_PATH" GET "Accept: $MANIFEST_ACCEPT")"
start_gh_s3 gh-ttl0 gh-bench GATEHOUSE_S3_TAG_CACHE_TTL=0
read -r m0_rps m0_p50 m0_p99 _ _ <<<"$(run_load gatehouse-ttl0 "http://127.0.0.1:$GH_PORT$M_PATH" GET "Accept: $MANIFEST_ACCEPT")"

# --- a chunked push: time and gatehouse's peak RSS, on a fresh gatehouse ---------------------------------------
BIG=$(random_file "$BIG_MIB")
BIG_DIGEST=$(file_digest "$BIG")

# chunked_push HOST REPO FILE DIGEST CHUNK: POST, FILE in CHUNK MiB PATCHes with Content-Range, then the PUT;
# prints the seconds it took.
chunked_push() {
    local t0 t1
    t0=$(now_s)
    python3 - "http://$1" "$2" "$3" "$4" "$5" <<'PY' || die "the chunked push to $1 failed"
import http.client, os, sys, urllib.parse
base, repo, path, digest, chunk = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) << 20
u = urllib.parse.urlparse(base)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
def req(method, url, body=None, headers={}):
    c.request(method, url, body=body, headers=headers)
    r = c.getresponse(); r.read()
    return r
r = req("POST", "/v2/%s/blobs/uploads/" % repo)
assert r.status == 202, r.status
loc = r.getheader("Location")
size = os.path.getsize(path)
with open(path, "rb") as f:
    off = 0
    while off < size:
        n = min(chunk, size - off)
        data = f.read(n)
        r = req("PATCH", loc, data, {"Content-Type": "application/octet-stream",
                                     "Content-Range": "%d-%d" % (off, off + n - 1), "Content-Length": str(n)})
        assert r.status == 202, (r.status, off)
        loc = r.getheader("Location"); off += n
sep = "&" if "?" in loc else "?"
r = req("PUT", loc + sep + "digest=" + digest)
assert r.status == 201, r.status
PY
    t1=$(now_s)
    calc "$t1 - $t0" "%.1f"
}

start_gh_s3 gh-big gh-big
log "chunked push of $BIG_MIB MiB in $CHUNK_MIB MiB chunks: a fresh gatehouse, then distribution"
BIG_G=$(chunked_push "127.0.0.1:$GH_PORT" bench/big "$BIG" "$BIG_DIGEST" "$CHUNK_MIB")
BIG_HWM=$(vm_hwm_kib "$GH_PID")
code=$(curl -sS -o /dev/null -I -w '%{http_code}' "http://127.0.0.1:$GH_PORT/v2/bench/big/blobs/$BIG_DIGEST")
[[ $code == 200 || $code == 307 ]] || die "HEAD of the chunked blob answered $code"
BIG_D=$(chunked_push "$DIST_HOST" bench/big "$BIG" "$BIG_DIGEST" "$CHUNK_MIB")
SMALL=$(random_file "$SMALL_MIB")
SMALL_DIGEST=$(file_digest "$SMALL")
log "chunked push of $SMALL_MIB MiB in 1 MiB chunks (smaller than a part): gatehouse, then distribution"
SMALL_G=$(chunked_push "127.0.0.1:$GH_PORT" bench/small "$SMALL" "$SMALL_DIGEST" 1)
SMALL_D=$(chunked_push "$DIST_HOST" bench/small "$SMALL" "$SMALL_DIGEST" 1)
BIG_OLD=""
if [[ -n ${OLD_GATEHOUSE_BIN:-} ]]; then
    # An older gatehouse (e.g. one that copied the upload so far into every chunk) on a bucket of its own.
    curl -sS -f -o /dev/null -X PUT "$S3/gh-big-old" || die "creating bucket gh-big-old"
    NEW_BIN=$GATEHOUSE_BIN GATEHOUSE_BIN=$OLD_GATEHOUSE_BIN
    start_gh_s3 gh-big-old gh-big-old
    GATEHOUSE_BIN=$NEW_BIN
    log "the same chunked push to $OLD_GATEHOUSE_BIN"
    BIG_OLD=$(chunked_push "127.0.0.1:$GH_PORT" bench/big "$BIG" "$BIG_DIGEST" "$CHUNK_MIB")
    BIG_OLD_HWM=$(vm_hwm_kib "$GH_PID")
    SMALL_OLD=$(chunked_push "127.0.0.1:$GH_PORT" bench/small "$SMALL" "$SMALL_DIGEST" 1)
fi
HWM=$(vm_hwm_kib "$GH")

bp_d=$(min_of "${push_d[@]}") bp_g=$(min_of "${push_g[@]}")
bl_d=$(min_of "${pull_d[@]}") bl_g=$(min_of "${pull_g[@]}")
cat <<OUT

== gatehouse on S3 vs distribution 2.8.2 on S3 (one moto_server, $(date -u +%Y-%m-%dT%H:%MZ)) ==
skopeo push $LAYER_MIB MiB (best of $RUNS): gatehouse ${bp_g}s, distribution ${bp_d}s, time ratio $(calc "$bp_g / $bp_d" %.2f) (target <= 1.0)
skopeo pull $LAYER_MIB MiB (best of $RUNS): gatehouse ${bl_g}s, distribution ${bl_d}s, time ratio $(calc "$bl_g / $bl_d" %.2f) (target <= 1.0)
manifest GET by tag, $WRK_CONNS conns: gatehouse $mg_rps req/s (p50 $(us_to_ms "$mg_p50") ms, p99 $(us_to_ms "$mg_p99") ms), distribution $md_rps req/s (p50 $(us_to_ms "$md_p50") ms, p99 $(us_to_ms "$md_p99") ms), ratio $(calc "$mg_rps / $md_rps" %.2f) (target >= 3)
manifest GET by tag, $WRK_CONNS conns, tag TTL 0: gatehouse $m0_rps req/s (p50 $(us_to_ms "$m0_p50") ms), ratio $(calc "$m0_rps / $md_rps" %.2f)
chunked push $BIG_MIB MiB in $CHUNK_MIB MiB chunks: gatehouse ${BIG_G}s, distribution ${BIG_D}s, time ratio $(calc "$BIG_G / $BIG_D" %.2f); gatehouse peak RSS $((BIG_HWM / 1024)) MiB (target < 128)
chunked push $SMALL_MIB MiB in 1 MiB chunks: gatehouse ${SMALL_G}s, distribution ${SMALL_D}s, time ratio $(calc "$SMALL_G / $SMALL_D" %.2f)
gatehouse peak RSS through the push/pull/manifest runs: $((HWM / 1024)) MiB
OUT
if [[ -n $BIG_OLD ]]; then
    echo "the same chunked push to $OLD_GATEHOUSE_BIN: ${BIG_OLD}s (peak RSS $((BIG_OLD_HWM / 1024)) MiB), new/old time ratio $(calc "$BIG_G / $BIG_OLD" %.2f)"
    echo "the same $SMALL_MIB MiB push in 1 MiB chunks to it: ${SMALL_OLD}s, new/old time ratio $(calc "$SMALL_G / $SMALL_OLD" %.2f)"
fi
