# shellcheck shell=bash
# Shared helpers for the gatehouse benches. Source it from a bench script:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Everything listens on 127.0.0.1 and every process started here is tracked by pid and stopped by the EXIT trap
# (also on failure or Ctrl-C). Big random input files are created once and kept under $GATEHOUSE_BENCH_DIR
# (default /tmp/gatehouse-bench); each run's registries, configs and logs live in a fresh run directory under it,
# removed at exit unless BENCH_KEEP=1.

set -euo pipefail

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_LIB_DIR/.." && pwd)
BENCH_DIR=${GATEHOUSE_BENCH_DIR:-/tmp/gatehouse-bench}
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$REPO_ROOT/target/release/gatehouse}
DIST_BIN=${DIST_BIN:-docker-registry}
NGINX_BIN=${NGINX_BIN:-nginx}
BENCH_USER=bench
BENCH_PASS=bench-password-7c1e
# wrk settings shared by the request-rate benches (the issues fix 32 connections).
WRK_CONNS=${WRK_CONNS:-32}
WRK_THREADS=${WRK_THREADS:-2}
WRK_DURATION=${WRK_DURATION:-10s}
# Accept header for manifest requests (distribution answers an OCI manifest only when the client accepts it).
MANIFEST_ACCEPT='application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json'

BENCH_PIDS=()
BENCH_MOUNTS=()
RUN_DIR=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'BENCH FAILED: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------------------------
# Setup and cleanup

bench_init() {
    local name=$1
    for tool in curl wrk python3 "$DIST_BIN" htpasswd; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
    mkdir -p "$BENCH_DIR"
    RUN_DIR=$(mktemp -d "$BENCH_DIR/run.$name.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "run dir $RUN_DIR"
}

# Stops every process this run started (TERM, then KILL after 5 s), by pid; unmounts BENCH_MOUNTS; removes the
# run dir.
bench_cleanup() {
    local rc=$?
    set +e
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${BENCH_PIDS[@]}"; do
        stop_pid "$pid"
    done
    local m
    for m in "${BENCH_MOUNTS[@]}"; do
        umount "$m" || log "could not unmount $m"
    done
    if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then
        if [[ ${BENCH_KEEP:-0} == 1 ]]; then
            log "kept $RUN_DIR"
        elif [[ $rc -ne 0 ]]; then
            # Keep the logs and configs to look at, not the stored data (GiBs).
            find "$RUN_DIR" -mindepth 1 -maxdepth 1 -type d ! -name nginx -exec rm -rf {} +
            log "kept the logs and configs in $RUN_DIR"
        else
            rm -rf "$RUN_DIR"
        fi
    fi
    exit "$rc"
}

# stop_pid PID: TERM, wait up to 5 s, then KILL; forgets the pid.
stop_pid() {
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local kept=() p
    for p in "${BENCH_PIDS[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    BENCH_PIDS=("${kept[@]+"${kept[@]}"}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT PID [SECONDS]: until something accepts on 127.0.0.1:PORT; fails if PID dies first.
wait_port() {
    local port=$1 pid=$2 secs=${3:-20} i
    for i in $(seq $((secs * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# vm_hwm_kib PID: peak resident set size of a live process, in KiB.
vm_hwm_kib() {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}

# ---------------------------------------------------------------------------------------------------------------
# Input data

# random_file MIB: path of a MIB MiB file of random bytes, created once under $BENCH_DIR (its sha256 beside it).
random_file() {
    local mib=$1 f="$BENCH_DIR/random-${1}MiB.bin"
    if [[ ! -f $f.sha256 || $(stat -c %s "$f" 2>/dev/null || echo 0) -ne $((mib * 1048576)) ]]; then
        log "creating $f ($mib MiB of random data, once)"
        rm -f "$f" "$f.sha256"
        head -c $((mib * 1048576)) /dev/urandom >"$f.tmp"
        sha256sum "$f.tmp" | awk '{print $1}' >"$f.sha256.tmp"
        mv "$f.tmp" "$f"
        mv "$f.sha256.tmp" "$f.sha256"
    fi
    echo "$f"
}

# file_digest FILE: sha256:<hex> (uses FILE.sha256 when present).
file_digest() {
    if [[ -f $1.sha256 ]]; then
        echo "sha256:$(cat "$1.sha256")"
    else
        echo "sha256:$(sha256sum "$1" | awk '{print $1}')"
    fi
}

# oci_image MIB: an OCI layout directory (built once under $BENCH_DIR) holding one image tagged v1 with a single
# layer: a tar of MIB MiB of random data, already gzipped (so skopeo pushes it as is and digests stay put). Writes
# DIR.layer-digest and DIR.layer-size beside it; prints DIR.
oci_image() {
    local mib=$1 dir="$BENCH_DIR/oci-${1}MiB"
    if [[ -f $dir/index.json && -f $dir.layer-digest && -f $dir.layer-size ]]; then
        echo "$dir"
        return
    fi
    local rnd tmp="$dir.tmp"
    rnd=$(random_file "$mib")
    log "building the OCI layout $dir (once)"
    rm -rf "$dir" "$tmp" "$dir.layer-digest" "$dir.layer-size"
    mkdir -p "$tmp/blobs/sha256"
    tar -C "$(dirname "$rnd")" --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$tmp/layer.tar" "$(basename "$rnd")"
    local diff_id layer layer_size config config_size manifest manifest_size
    diff_id=$(sha256sum "$tmp/layer.tar" | awk '{print $1}')
    gzip -1 -n -c "$tmp/layer.tar" >"$tmp/layer.tgz"
    rm -f "$tmp/layer.tar"
    layer=$(sha256sum "$tmp/layer.tgz" | awk '{print $1}')
    layer_size=$(stat -c %s "$tmp/layer.tgz")
    mv "$tmp/layer.tgz" "$tmp/blobs/sha256/$layer"
    printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$diff_id" >"$tmp/c"
    config=$(sha256sum "$tmp/c" | awk '{print $1}')
    config_size=$(stat -c %s "$tmp/c")
    mv "$tmp/c" "$tmp/blobs/sha256/$config"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
        "$config" "$config_size" "$layer" "$layer_size" >"$tmp/m"
    manifest=$(sha256sum "$tmp/m" | awk '{print $1}')
    manifest_size=$(stat -c %s "$tmp/m")
    mv "$tmp/m" "$tmp/blobs/sha256/$manifest"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
        "$manifest" "$manifest_size" >"$tmp/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$tmp/oci-layout"
    mv "$tmp" "$dir"
    echo "sha256:$layer" >"$dir.layer-digest"
    echo "$layer_size" >"$dir.layer-size"
    echo "$dir"
}

# htpasswd_file PATH COST: one user $BENCH_USER with a bcrypt hash of the given cost.
htpasswd_file() {
    htpasswd -B -C "$2" -b -c "$1" "$BENCH_USER" "$BENCH_PASS" 2>/dev/null
}

basic_auth_header() {
    printf 'Basic %s' "$(printf '%s:%s' "$BENCH_USER" "$BENCH_PASS" | base64 -w0)"
}

# ---------------------------------------------------------------------------------------------------------------
# distribution 2.8.2 (Debian's docker-registry)

# start_distribution NAME ROOT [HTPASSWD]: starts distribution on a free port with the filesystem driver at ROOT,
# with htpasswd auth when HTPASSWD is given. Sets DIST_PORT and DIST_PID. The config is the registry:2 image's
# default (in-memory blob descriptor cache, filesystem driver) except logging: access log off, level warn, the same
# for every arm of every bench.
start_distribution() {
    local name=$1 root=$2 htpasswd=${3:-}
    local port cfg="$RUN_DIR/$name.yml"
    port=$(free_port)
    mkdir -p "$root"
    cat >"$cfg" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $root
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
    if [[ -n $htpasswd ]]; then
        cat >>"$cfg" <<EOF
auth:
  htpasswd:
    realm: bench
    path: $htpasswd
EOF
    fi
    # A clean environment: a caller's REGISTRY_* variables would override the file.
    env -i PATH="$PATH" HOME="${HOME:-/root}" "$DIST_BIN" serve "$cfg" >"$RUN_DIR/$name.log" 2>&1 &
    DIST_PID=$!
    BENCH_PIDS+=("$DIST_PID")
    wait_port "$port" "$DIST_PID" || {
        tail -20 "$RUN_DIR/$name.log" >&2
        die "distribution $name did not start"
    }
    DIST_PORT=$port
    log "distribution $name on 127.0.0.1:$port (pid $DIST_PID${htpasswd:+, htpasswd})"
}

# ---------------------------------------------------------------------------------------------------------------
# gatehouse

ensure_gatehouse_built() {
    if [[ ! -x $GATEHOUSE_BIN ]]; then
        log "building $GATEHOUSE_BIN (cargo build --release, several minutes)"
        (cd "$REPO_ROOT" && cargo build --release) >&2 || die "cargo build --release failed"
    fi
    [[ -x $GATEHOUSE_BIN ]] || die "no gatehouse binary at $GATEHOUSE_BIN"
}

# start_gatehouse NAME [KEY=VALUE ...]: starts the release binary on a free port. Options (all optional):
#   upstream=URL      front this registry (GATEHOUSE_UPSTREAM_URL); without it the embedded backend serves root=
#   root=DIR          embedded storage root (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY)
#   htpasswd=FILE     htpasswd auth with this file; without it REGISTRY_AUTH=none
#   cache_ttl=SECONDS [auth] cache_ttl_seconds (default 600; 0 disables the verified-credential cache)
#   observe=on|off    on (default, gatehouse's defaults): the metrics listener (on a free loopback port, so that
#                     instances never fight over 9090) and the access log (one line per request, to the log file);
#                     off: [metrics] listen = "" and [log] access_log = false
# The seed's env var names carry what they can; the rest goes in a small TOML file. The environment is otherwise
# clean, so a caller's REGISTRY_* variables cannot change what is measured. gatehouse logs at GATEHOUSE_LOG
# (default info, its own default, at which the access log is written) to $RUN_DIR/NAME.log.
# Sets GH_PORT, GH_PID and GH_METRICS_PORT (empty when off).
start_gatehouse() {
    local name=$1
    shift
    local upstream="" root="" htpasswd="" cache_ttl=600 observe=on kv extra_env=()
    for kv in "$@"; do
        case $kv in
        env=*=*) extra_env+=("${kv#env=}") ;;
        upstream=*) upstream=${kv#*=} ;;
        root=*) root=${kv#*=} ;;
        htpasswd=*) htpasswd=${kv#*=} ;;
        cache_ttl=*) cache_ttl=${kv#*=} ;;
        observe=on | observe=off) observe=${kv#*=} ;;
        *) die "start_gatehouse: unknown option $kv" ;;
        esac
    done
    ensure_gatehouse_built
    local port cfg="$RUN_DIR/$name.toml" metrics_listen="" access_log=false
    port=$(free_port)
    GH_METRICS_PORT=""
    if [[ $observe == on ]]; then
        GH_METRICS_PORT=$(free_port)
        metrics_listen="127.0.0.1:$GH_METRICS_PORT"
        access_log=true
    fi
    [[ -n $root ]] || root="$RUN_DIR/$name-data"
    mkdir -p "$root"
    cat >"$cfg" <<EOF
[server]
threads = 2
grace_period_seconds = 1

[auth]
cache_ttl_seconds = $cache_ttl

[storage]
delete_enabled = true

[metrics]
listen = "$metrics_listen"

[log]
access_log = $access_log
EOF
    local envs=(PATH="$PATH" HOME="${HOME:-/root}" GATEHOUSE_LOG="${GATEHOUSE_LOG:-info}"
        REGISTRY_HTTP_ADDR="127.0.0.1:$port" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$root")
    if [[ -n $htpasswd ]]; then
        envs+=(REGISTRY_AUTH=htpasswd REGISTRY_AUTH_HTPASSWD_PATH="$htpasswd" REGISTRY_AUTH_HTPASSWD_REALM=bench)
    else
        envs+=(REGISTRY_AUTH=none)
    fi
    [[ -z $upstream ]] || envs+=(GATEHOUSE_UPSTREAM_URL="$upstream")
    envs+=("${extra_env[@]}")
    env -i "${envs[@]}" "$GATEHOUSE_BIN" serve --config "$cfg" >"$RUN_DIR/$name.log" 2>&1 &
    GH_PID=$!
    BENCH_PIDS+=("$GH_PID")
    wait_port "$port" "$GH_PID" || {
        tail -20 "$RUN_DIR/$name.log" >&2
        die "gatehouse $name did not start"
    }
    GH_PORT=$port
    local what="embedded $root" auth="auth none"
    [[ -z $upstream ]] || what="upstream $upstream"
    [[ -z $htpasswd ]] || auth="htpasswd, cache_ttl_seconds $cache_ttl"
    if [[ -n $GH_METRICS_PORT ]]; then
        wait_port "$GH_METRICS_PORT" "$GH_PID" 5 || die "gatehouse $name: no metrics listener on $GH_METRICS_PORT"
    fi
    log "gatehouse $name on 127.0.0.1:$port (pid $GH_PID; $what; $auth; metrics+access log $observe)"
}

# ---------------------------------------------------------------------------------------------------------------
# nginx (our own instance: own prefix dir, own config, loopback port, daemon off)

# start_nginx NAME DOCROOT: serves DOCROOT with sendfile on. Sets NGINX_PORT and NGINX_PID.
start_nginx() {
    local name=$1 docroot=$2
    command -v "$NGINX_BIN" >/dev/null || die "nginx is not installed (apt-get install -y nginx)"
    local port prefix="$RUN_DIR/$name"
    port=$(free_port)
    mkdir -p "$prefix/logs"
    cat >"$prefix/nginx.conf" <<EOF
daemon off;
master_process off;
user root;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 256; }
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $prefix/client_body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:$port;
        root $docroot;
        location / { }
    }
}
EOF
    "$NGINX_BIN" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" >"$RUN_DIR/$name.log" 2>&1 &
    NGINX_PID=$!
    BENCH_PIDS+=("$NGINX_PID")
    wait_port "$port" "$NGINX_PID" || {
        cat "$prefix/logs/error.log" "$RUN_DIR/$name.log" >&2 || true
        die "nginx did not start"
    }
    NGINX_PORT=$port
    log "nginx $name on 127.0.0.1:$port (pid $NGINX_PID, sendfile on, root $docroot)"
}

# ---------------------------------------------------------------------------------------------------------------
# Registry traffic with curl

# upload_blob BASE REPO FILE DIGEST [CURL_ARGS...]: POST an upload, then PUT ?digest= with the file as body.
# Prints "<seconds for the PUT> <bytes/s>" of the PUT (the POST is not timed). Fails unless the PUT answers 201.
upload_blob() {
    local base=$1 repo=$2 file=$3 digest=$4
    shift 4
    local hdrs="$RUN_DIR/upload.headers" code location
    code=$(curl -sS -o /dev/null -D "$hdrs" -w '%{http_code}' -X POST "$@" "$base/v2/$repo/blobs/uploads/") ||
        die "POST upload to $base failed"
    [[ $code == 202 ]] || die "POST $base/v2/$repo/blobs/uploads/ answered $code, not 202"
    location=$(awk 'tolower($1)=="location:" {print $2}' "$hdrs" | tr -d '\r')
    [[ -n $location ]] || die "no Location in the upload answer from $base"
    [[ $location == http* ]] || location="$base$location"
    if [[ $location == *\?* ]]; then location="$location&digest=$digest"; else location="$location?digest=$digest"; fi
    local out
    out=$(curl -sS -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$file" -X PUT \
        -w '%{http_code} %{time_total} %{speed_upload}' "$@" "$location") || die "PUT of $file to $base failed"
    read -r code t speed <<<"$out"
    [[ $code == 201 ]] || die "PUT $file to $base answered $code, not 201"
    echo "$t $speed"
}

# download_blob BASE REPO DIGEST SIZE [CURL_ARGS...]: GET the blob to /dev/null; prints "<seconds> <bytes/s>".
download_blob() {
    local base=$1 repo=$2 digest=$3 size=$4
    shift 4
    download_url "$base/v2/$repo/blobs/$digest" "$size" "$@"
}

# download_url URL SIZE [CURL_ARGS...]: GET to /dev/null, checks 200 and the size; prints "<seconds> <bytes/s>".
download_url() {
    local url=$1 size=$2
    shift 2
    local out code t speed got
    out=$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{speed_download} %{size_download}' "$@" "$url") ||
        die "GET $url failed"
    read -r code t speed got <<<"$out"
    [[ $code == 200 ]] || die "GET $url answered $code, not 200"
    [[ $got == "$size" ]] || die "GET $url gave $got bytes, expected $size"
    echo "$t $speed"
}

# push_small_blob BASE REPO FILE [CURL_ARGS...]: uploads a small file; prints its digest.
push_small_blob() {
    local base=$1 repo=$2 file=$3
    shift 3
    local digest
    digest=$(file_digest "$file")
    upload_blob "$base" "$repo" "$file" "$digest" "$@" >/dev/null
    echo "$digest"
}

# push_tiny_image BASE REPO TAG [CURL_ARGS...]: a config blob, a tiny gzip layer and a Docker schema 2 manifest
# under TAG, so that HEAD/GET /v2/REPO/manifests/TAG answer 200.
push_tiny_image() {
    local base=$1 repo=$2 tag=$3
    shift 3
    local d="$RUN_DIR/tiny-image"
    mkdir -p "$d"
    printf 'gatehouse bench layer\n' | gzip -n >"$d/layer.gz"
    local layer_diff layer_digest layer_size
    layer_diff=$(gzip -dc "$d/layer.gz" | sha256sum | awk '{print $1}')
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"config":{}}' \
        "$layer_diff" >"$d/config.json"
    local config_digest config_size
    config_digest=$(push_small_blob "$base" "$repo" "$d/config.json" "$@")
    config_size=$(stat -c %s "$d/config.json")
    layer_digest=$(push_small_blob "$base" "$repo" "$d/layer.gz" "$@")
    layer_size=$(stat -c %s "$d/layer.gz")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%s,"digest":"%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%s,"digest":"%s"}]}' \
        "$config_size" "$config_digest" "$layer_size" "$layer_digest" >"$d/manifest.json"
    local code
    code=$(curl -sS -o "$d/put.out" -w '%{http_code}' -X PUT \
        -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
        --data-binary @"$d/manifest.json" "$@" "$base/v2/$repo/manifests/$tag") || die "PUT manifest to $base failed"
    [[ $code == 201 ]] || die "PUT manifest $repo:$tag to $base answered $code: $(cat "$d/put.out")"
}

# ---------------------------------------------------------------------------------------------------------------
# wrk

# wrk_script METHOD [HEADER: VALUE ...]: writes a wrk Lua script that sends METHOD with the headers and, when done,
# prints one machine-readable line:
#   WRK_RESULT <req/s> <p50 us> <p99 us> <requests> <non-2xx/3xx> <socket errors> <mean us>
wrk_script() {
    local method=$1
    shift
    local f
    f=$(mktemp "$RUN_DIR/wrk.XXXXXX.lua")
    {
        echo "wrk.method = \"$method\""
        local h
        for h in "$@"; do
            printf 'wrk.headers["%s"] = "%s"\n' "${h%%: *}" "${h#*: }"
        done
        cat <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %.2f %d %d %d %d %d %.0f\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, latency.mean))
end
EOF
    } >"$f"
    echo "$f"
}

# load_tool METHOD: the load generator used for METHOD. wrk cannot do HEAD (Debian's wrk 4.1.0 waits for a body
# of the Content-Length a HEAD answer announces, so it records 0 requests), so HEAD goes to oha (crates.io:
# `cargo install oha`) or, without it, to ab -i (apache2-utils). LOADGEN=wrk|oha|ab forces one.
load_tool() {
    local tool=${LOADGEN:-auto}
    if [[ $tool == auto ]]; then
        if [[ $1 != HEAD ]]; then
            tool=wrk
        elif command -v oha >/dev/null; then
            tool=oha
        else
            tool=ab
        fi
    fi
    [[ $1 != HEAD || $tool != wrk ]] || die "wrk cannot send HEAD requests (it waits for a body); use LOADGEN=oha or ab"
    command -v "$tool" >/dev/null || die "load generator $tool is not installed"
    echo "$tool"
}

# load_desc METHOD: a one-line description of the load run settings.
load_desc() {
    local tool
    tool=$(load_tool "$1")
    case $tool in
    wrk) echo "wrk $WRK_CONNS connections, $WRK_THREADS threads, $WRK_DURATION" ;;
    oha) echo "oha $(oha --version | awk '{print $2}') $WRK_CONNS connections, $WRK_DURATION" ;;
    ab) echo "ab -k $WRK_CONNS connections (1 thread), $WRK_DURATION" ;;
    esac
}

# run_load LABEL URL METHOD [HEADER: VALUE ...]: WRK_CONNS keep-alive connections for WRK_DURATION with the tool
# load_tool picks. Checks that the URL answers 2xx first, and counts error statuses and socket errors under load.
# Prints "<req/s> <p50 us> <p99 us> <requests> <errors>"; the tool's own output goes to $RUN_DIR/load-LABEL.txt.
run_load() {
    local label=$1 url=$2 method=$3
    shift 3
    local curl_h=() h
    for h in "$@"; do curl_h+=(-H "$h"); done
    local code
    if [[ $method == HEAD ]]; then
        code=$(curl -sS -o /dev/null -I -w '%{http_code}' "${curl_h[@]}" "$url")
    else
        code=$(curl -sS -o /dev/null -X "$method" -w '%{http_code}' "${curl_h[@]}" "$url")
    fi
    [[ $code == 2* ]] || die "$label: $method $url answered $code before the load run"
    local tool out="$RUN_DIR/load-$label.txt" result
    tool=$(load_tool "$method")
    log "$tool $label: $method $url ($(load_desc "$method"))"
    case $tool in
    wrk)
        local script
        script=$(wrk_script "$method" "$@")
        wrk -t "$WRK_THREADS" -c "$WRK_CONNS" -d "$WRK_DURATION" --timeout 60s --latency -s "$script" "$url" >"$out" ||
            die "wrk failed for $label"
        # WRK_RESULT <req/s> <p50 us> <p99 us> <requests> <error statuses> <socket errors> <mean us>
        result=$(awk '/^WRK_RESULT/ {print $2, $3, $4, $5, $6 + $7}' "$out")
        ;;
    oha)
        local oha_h=()
        for h in "$@"; do oha_h+=(-H "$h"); done
        oha --no-tui --output-format json -z "$WRK_DURATION" -c "$WRK_CONNS" -m "$method" -t 60s \
            "${oha_h[@]}" "$url" >"$out" 2>"$out.err" || die "oha failed for $label: $(head -c 300 "$out.err")"
        result=$(python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
ok = sum(n for c, n in codes.items() if c.startswith("2"))
bad = sum(n for c, n in codes.items() if not c.startswith("2"))
# oha cancels what is in flight at the deadline: not an error of the server.
errs = sum(n for e, n in r.get("errorDistribution", {}).items() if "deadline" not in e)
lat = r["latencyPercentiles"]
# oha's own requestsPerSec counts the requests cut at the deadline too (32 of them at 32 connections): that doubles
# the rate of a slow arm. Responses received over the run's length instead, as wrk counts.
print("%.2f %d %d %d %d" % ((ok + bad) / r["summary"]["total"], (lat["p50"] or 0) * 1e6, (lat["p99"] or 0) * 1e6,
                            ok + bad, bad + errs))
PY
)
        ;;
    ab)
        local ab_h=() secs=${WRK_DURATION%s}
        for h in "$@"; do ab_h+=(-H "$h"); done
        [[ $method == HEAD ]] && ab_h+=(-i)
        ab -k -q -c "$WRK_CONNS" -t "$secs" -n 100000000 -s 60 "${ab_h[@]}" "$url" >"$out" 2>&1 ||
            die "ab failed for $label"
        # ab's percentiles are whole milliseconds.
        result=$(awk '/^Requests per second:/ {rps=$4} /^Complete requests:/ {n=$3} /^Failed requests:/ {f=$3}
            /^Non-2xx responses:/ {x=$3} $1=="50%" {p50=$2*1000} $1=="99%" {p99=$2*1000}
            END {print rps, p50, p99, n, f + x}' "$out")
        ;;
    esac
    [[ -n $result ]] || die "$label: no result from $tool (see $out)"
    local rps p50 p99 n bad
    read -r rps p50 p99 n bad <<<"$result"
    if ((bad > 0)); then
        log "WARNING $label: $bad error responses or socket errors out of $n requests"
    fi
    echo "$rps $p50 $p99 $n $bad"
}

# ---------------------------------------------------------------------------------------------------------------
# Arithmetic and output

# calc EXPR: floating-point arithmetic through awk, e.g. calc "3 / 2" -> 1.5 (formatted %.3g unless FMT given).
calc() {
    awk "BEGIN { printf \"${2:-%.3g}\", $1 }"
}

# min_of N...: the smallest number.
min_of() {
    printf '%s\n' "$@" | sort -g | head -1
}

# us_to_ms MICROSECONDS
us_to_ms() {
    awk "BEGIN { printf \"%.2f\", $1 / 1000 }"
}

now_s() { echo "$EPOCHREALTIME"; }

# machine_note: one line describing this machine and the versions measured.
machine_note() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    printf '%s UTC; %s; %s cores (%s); load avg %s; %s; gatehouse %s (binary of %s, tree at %s); distribution %s; wrk %s\n' \
        "$(date -u '+%Y-%m-%d %H:%M')" "$(uname -sr)" "$(nproc)" "$cpu" "$(cut -d' ' -f1-3 /proc/loadavg)" \
        "$(. /etc/os-release && echo "$PRETTY_NAME")" \
        "$("$GATEHOUSE_BIN" --version 2>/dev/null | awk '{print $2}')" \
        "$(date -u -r "$GATEHOUSE_BIN" '+%H:%M UTC')" \
        "$(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null)" \
        "$("$DIST_BIN" --version 2>/dev/null | awk '{print $NF}')" \
        "$(wrk -v 2>&1 | awk 'NR==1 {print $2}')"
}
