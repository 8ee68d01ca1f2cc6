#!/usr/bin/env bash
# Issue 10 bench: TLS. gatehouse's rustls listener vs nginx (OpenSSL) with the same certificate, and vs
# distribution 2.8.2 with its own TLS and htpasswd.
#
#   bash benches/tls.sh
#
# One CA and one P-256 server certificate for 127.0.0.1, made with openssl in the run dir, serve every arm.
#  - GET of a BLOB_MIB (1024) MiB blob over TLS, warm page cache, curl to /dev/null, best of RUNS: gatehouse
#    (embedded, auth none) vs nginx (ssl, sendfile has no effect under TLS) serving gatehouse's own blob file.
#    Target >= 1.0.
#  - Full TLS handshakes per second, TLS 1.3 and TLS 1.2 (both servers offer both): HS_CLIENTS (32) parallel
#    `openssl s_time -new` for HS_SECONDS (10) each, handshake only (no request), connections summed:
#    gatehouse vs nginx. Target >= 1.0.
#  - Resumed handshakes per second: the same with `s_time -reuse` (TLS 1.3: with a small GET, see
#    handshakes()), with the share of connections that did resume.
#  - Authenticated manifest HEAD over TLS with keep-alive (LOADGEN as lib.sh picks: oha or ab), bcrypt cost
#    BCRYPT_COST (5): gatehouse (htpasswd) vs distribution 2.8.2 (its own http.tls and htpasswd).
#  - gatehouse's peak RSS (VmHWM) through all of it.
#
# Env: GATEHOUSE_BENCH_DIR (default /tmp/gatehouse-bench), RUNS (5), BLOB_MIB (1024), HS_CLIENTS (32),
#      HS_SECONDS (10), BCRYPT_COST (5), WRK_DURATION (10s), WRK_CONNS (32), LOADGEN, GATEHOUSE_BIN,
#      BENCH_KEEP=1 keeps the run dir.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-5}
BLOB_MIB=${BLOB_MIB:-1024}
HS_CLIENTS=${HS_CLIENTS:-32}
HS_SECONDS=${HS_SECONDS:-10}
BCRYPT_COST=${BCRYPT_COST:-5}

command -v openssl >/dev/null || die "openssl is not installed (apt-get install -y openssl)"
bench_init tls
ensure_gatehouse_built

# --- the certificate ------------------------------------------------------------------------------------------
PKI="$RUN_DIR/pki"
mkdir -p "$PKI"
openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=bench CA" -days 2 \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=127.0.0.1 \
    -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$PKI/ext"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial 1 -days 2 \
    -extfile "$PKI/ext" -out "$PKI/server.crt" 2>/dev/null
CERT="$PKI/server.crt" KEY="$PKI/server.key" CA="$PKI/ca.crt"
# curl (and run_load's probe) verify against the bench CA.
export CURL_CA_BUNDLE="$CA"

# start_tls_gatehouse NAME ROOT [HTPASSWD]: gatehouse on TLS with CERT/KEY. Sets GH_PID, GH_PORT.
start_tls_gatehouse() {
    local name=$1 root=$2 htpasswd=${3:-} port
    port=$(free_port)
    mkdir -p "$root"
    cat >"$RUN_DIR/$name.toml" <<EOF
[server]
threads = 2
grace_period_seconds = 1

[storage]
delete_enabled = true

[metrics]
listen = ""
EOF
    local envs=(PATH="$PATH" HOME="${HOME:-/root}" GATEHOUSE_LOG="${GATEHOUSE_LOG:-info}"
        REGISTRY_HTTP_ADDR="127.0.0.1:$port" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$root"
        REGISTRY_HTTP_TLS_CERTIFICATE="$CERT" REGISTRY_HTTP_TLS_KEY="$KEY")
    if [[ -n $htpasswd ]]; then
        envs+=(REGISTRY_AUTH=htpasswd REGISTRY_AUTH_HTPASSWD_PATH="$htpasswd" REGISTRY_AUTH_HTPASSWD_REALM=bench)
    else
        envs+=(REGISTRY_AUTH=none)
    fi
    env -i "${envs[@]}" "$GATEHOUSE_BIN" serve --config "$RUN_DIR/$name.toml" >"$RUN_DIR/$name.log" 2>&1 &
    GH_PID=$!
    BENCH_PIDS+=("$GH_PID")
    wait_port "$port" "$GH_PID" || {
        tail -20 "$RUN_DIR/$name.log" >&2
        die "gatehouse $name did not start"
    }
    GH_PORT=$port
    log "gatehouse $name on https://127.0.0.1:$port (pid $GH_PID${htpasswd:+, htpasswd})"
}

# start_tls_nginx NAME DOCROOT: nginx with ssl on CERT/KEY serving DOCROOT. Sets NGINX_PORT.
start_tls_nginx() {
    local name=$1 docroot=$2 port prefix="$RUN_DIR/$1"
    command -v "$NGINX_BIN" >/dev/null || die "nginx is not installed (apt-get install -y nginx)"
    port=$(free_port)
    mkdir -p "$prefix/logs"
    cat >"$prefix/nginx.conf" <<EOF
daemon off;
master_process off;
user root;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 1024; }
http {
    sendfile on;
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $prefix/client_body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    # nginx 1.22's default protocols stop at TLS 1.2: both servers offer the same two.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench:10m;
    server {
        # Debian 12 nginx 1.22 has no http2 directive (1.25+): http2 goes on the listen line.
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        root $docroot;
        location / { }
    }
}
EOF
    "$NGINX_BIN" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" >"$RUN_DIR/$name.log" 2>&1 &
    BENCH_PIDS+=("$!")
    wait_port "$port" "$!" || {
        cat "$prefix/logs/error.log" >&2 || true
        die "nginx did not start"
    }
    NGINX_PORT=$port
    log "nginx $name on https://127.0.0.1:$port (1 worker, ssl, root $docroot)"
}

# start_tls_distribution NAME ROOT HTPASSWD: distribution 2.8.2 with its own http.tls. Sets DIST_PORT.
start_tls_distribution() {
    local name=$1 root=$2 htpasswd=$3 port cfg="$RUN_DIR/$1.yml"
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
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $CERT
    key: $KEY
auth:
  htpasswd:
    realm: bench
    path: $htpasswd
EOF
    env -i PATH="$PATH" HOME="${HOME:-/root}" "$DIST_BIN" serve "$cfg" >"$RUN_DIR/$name.log" 2>&1 &
    BENCH_PIDS+=("$!")
    wait_port "$port" "$!" || {
        tail -20 "$RUN_DIR/$name.log" >&2
        die "distribution $name did not start"
    }
    DIST_PORT=$port
    log "distribution $name on https://127.0.0.1:$port (its own TLS, htpasswd)"
}

# handshakes PORT VERSION MODE: HS_CLIENTS parallel `openssl s_time VERSION MODE` (-tls1_2/-tls1_3, -new or
# -reuse); prints "handshakes/s reused%". TLS 1.3 sends its tickets after the handshake, and s_time reads them
# only when it reads a reply: TLS 1.3 with -reuse fetches `-www /` (a small error page from both servers), or
# it would resume nothing and measure full handshakes. reused% (s_time's "r" marks) says what was measured.
handshakes() {
    local port=$1 version=$2 mode=$3 i out www=()
    [[ $version == -tls1_3 && $mode == -reuse ]] && www=(-www /)
    out="$RUN_DIR/s_time.$port$version$mode"
    for i in $(seq "$HS_CLIENTS"); do
        openssl s_time -connect "127.0.0.1:$port" "$version" "$mode" "${www[@]}" -time "$HS_SECONDS" \
            -CAfile "$CA" >"$out.$i" 2>&1 &
    done
    wait
    # "N connections in T real seconds"; one mark per connection: r (resumed) or * (full).
    cat "$out".* | awk '/connections in [0-9.]+ real seconds/ {n += $1; if ($4 > t) t = $4}
        /^[rt*]+$/ {marks += length($0); r += gsub(/r/, "")}
        END { if (t == 0) { print 0, 0 } else { printf "%.1f %.0f\n", n / t, marks ? 100 * r / marks : 0 } }'
}

# --- 1 GiB blob over TLS ----------------------------------------------------------------------------------------
BLOB=$(random_file "$BLOB_MIB")
DIGEST=$(file_digest "$BLOB")
SIZE=$(stat -c %s "$BLOB")
start_tls_gatehouse gatehouse "$RUN_DIR/gh-root"
GH=$GH_PID
GATE="https://127.0.0.1:$GH_PORT"
log "uploading the $BLOB_MIB MiB blob to gatehouse over TLS"
upload_blob "$GATE" bench/big "$BLOB" "$DIGEST" >/dev/null
HEX=${DIGEST#sha256:}
BLOB_DIR="$RUN_DIR/gh-root/docker/registry/v2/blobs/sha256/${HEX:0:2}/$HEX"
[[ -f $BLOB_DIR/data ]] || die "gatehouse did not store the blob at $BLOB_DIR/data"
start_tls_nginx nginx "$BLOB_DIR"
download_url "https://127.0.0.1:$NGINX_PORT/data" "$SIZE" >/dev/null # warm
gh_get=() ng_get=()
for i in $(seq "$RUNS"); do
    read -r t _ < <(download_blob "$GATE" bench/big "$DIGEST" "$SIZE")
    gh_get+=("$t")
    read -r t _ < <(download_url "https://127.0.0.1:$NGINX_PORT/data" "$SIZE")
    ng_get+=("$t")
done
gh_best=$(min_of "${gh_get[@]}") ng_best=$(min_of "${ng_get[@]}")
gh_mbs=$(calc "$SIZE / $gh_best / 1048576" "%.0f") ng_mbs=$(calc "$SIZE / $ng_best / 1048576" "%.0f")

# --- handshakes -------------------------------------------------------------------------------------------------
log "handshakes: $HS_CLIENTS clients x ${HS_SECONDS}s per row, TLS 1.3 and 1.2, gatehouse then nginx"
read -r gh_full13 _ < <(handshakes "$GH_PORT" -tls1_3 -new)
read -r ng_full13 _ < <(handshakes "$NGINX_PORT" -tls1_3 -new)
read -r gh_full12 _ < <(handshakes "$GH_PORT" -tls1_2 -new)
read -r ng_full12 _ < <(handshakes "$NGINX_PORT" -tls1_2 -new)
read -r gh_res13 gh_res13_r < <(handshakes "$GH_PORT" -tls1_3 -reuse)
read -r ng_res13 ng_res13_r < <(handshakes "$NGINX_PORT" -tls1_3 -reuse)
read -r gh_res12 gh_res12_r < <(handshakes "$GH_PORT" -tls1_2 -reuse)
read -r ng_res12 ng_res12_r < <(handshakes "$NGINX_PORT" -tls1_2 -reuse)

# --- authenticated manifest HEAD over TLS -----------------------------------------------------------------------
HT="$RUN_DIR/htpasswd"
htpasswd_file "$HT" "$BCRYPT_COST"
AUTH="Authorization: $(basic_auth_header)"
start_tls_gatehouse gatehouse-auth "$RUN_DIR/gh-auth-root" "$HT"
GH_AUTH=$GH_PID
GATE_AUTH="https://127.0.0.1:$GH_PORT"
start_tls_distribution distribution "$RUN_DIR/dist-root" "$HT"
DIST="https://127.0.0.1:$DIST_PORT"
push_tiny_image "$GATE_AUTH" bench/app v1 -H "$AUTH"
push_tiny_image "$DIST" bench/app v1 -H "$AUTH"
ACCEPT="Accept: application/vnd.docker.distribution.manifest.v2+json"
read -r gh_head _ _ _ _ < <(run_load gh-head "$GATE_AUTH/v2/bench/app/manifests/v1" HEAD "$AUTH" "$ACCEPT")
read -r di_head _ _ _ _ < <(run_load dist-head "$DIST/v2/bench/app/manifests/v1" HEAD "$AUTH" "$ACCEPT")

gh_rss=$(vm_hwm_kib "$GH") gh_auth_rss=$(vm_hwm_kib "$GH_AUTH")

echo
machine_note
printf '%-58s %14s %14s %8s\n' "TLS ($(openssl version | awk '{print $1, $2}') clients)" gatehouse other ratio
printf '%-58s %14s %14s %8s\n' "GET $BLOB_MIB MiB blob, best of $RUNS, MiB/s (vs nginx)" "$gh_mbs" "$ng_mbs" \
    "$(calc "$gh_mbs / $ng_mbs" "%.2f")"
hs_row() { # LABEL GATEHOUSE NGINX
    printf '%-58s %14s %14s %8s\n' "$1" "$2" "$3" "$(calc "$2 / ($3 + 0.0001)" "%.2f")"
}
hs_row "full handshakes/s TLS 1.3, $HS_CLIENTS clients (vs nginx)" "$gh_full13" "$ng_full13"
hs_row "full handshakes/s TLS 1.2, $HS_CLIENTS clients (vs nginx)" "$gh_full12" "$ng_full12"
hs_row "resumed TLS 1.3 (+ GET /), resumed ${gh_res13_r}%/${ng_res13_r}% (vs nginx)" "$gh_res13" "$ng_res13"
hs_row "resumed handshakes/s TLS 1.2, resumed ${gh_res12_r}%/${ng_res12_r}% (vs nginx)" "$gh_res12" "$ng_res12"
printf '%-58s %14s %14s %8s\n' "auth HEAD manifest req/s, keep-alive (vs distribution)" "$gh_head" "$di_head" \
    "$(calc "$gh_head / ($di_head + 0.0001)" "%.2f")"
printf '%-58s %14s\n' "gatehouse peak RSS KiB (blob + handshakes; auth arm)" "$gh_rss; $gh_auth_rss"
