#!/usr/bin/env bash
# Issue 3 bench: gatehouse's embedded registry vs distribution 2.8.2 on the same disk, and vs nginx (sendfile).
#
#   bash benches/embedded.sh
#
# Both registries run without auth (REGISTRY_AUTH=none for gatehouse), their roots side by side under
# $GATEHOUSE_BENCH_DIR (one disk).
#  - skopeo push and pull of a 256 MiB single-layer image (an OCI layout with one already-gzipped layer of random
#    data, built once), best of RUNS, arms alternating; skopeo's blob-info cache is deleted before every copy.
#    Target: gatehouse's time <= distribution's, both ways.
#  - GET of the 256 MiB layer blob, warm page cache, curl to /dev/null, best of GET_RUNS: gatehouse vs nginx
#    (sendfile on) serving gatehouse's own blob file, distribution for reference. Target: gatehouse >= 1.0 of nginx
#    (issue 9 finding 2).
#  - GET manifest by tag, wrk 32 connections, no auth: gatehouse vs distribution. Target >= 3x.
#  - gatehouse's peak RSS (VmHWM) through all of it. Target < 64 MiB.
#  - CONC (32) concurrent curl clients each GETting one CONC_MIB (64) MiB blob, best of CONC_RUNS, aggregate MiB/s:
#    gatehouse vs nginx (sendfile, gatehouse's file) vs distribution; gatehouse's peak RSS during these runs alone
#    (VmHWM reset through /proc/PID/clear_refs first) and its thread count after. Target (issue 9 finding 2):
#    gatehouse >= 1.0 of nginx, peak RSS < 64 MiB. Each server's CPU seconds per GiB served over those runs is
#    printed beside its rate: the clients share the machine's cores, so what a server spends per byte decides it.
#
# Env: GATEHOUSE_BENCH_DIR (default /tmp/gatehouse-bench), RUNS (5), GET_RUNS (10), LAYER_MIB (256),
#      CONC (32), CONC_MIB (64), CONC_RUNS (5),
#      WRK_DURATION (10s), WRK_CONNS (32), WRK_THREADS (2), GATEHOUSE_BIN, BENCH_KEEP=1 keeps the run dir.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-5}
GET_RUNS=${GET_RUNS:-10}
LAYER_MIB=${LAYER_MIB:-256}
CONC=${CONC:-32}
CONC_MIB=${CONC_MIB:-64}
CONC_RUNS=${CONC_RUNS:-5}
BLOB_CACHE=/var/lib/containers/cache/blob-info-cache-v1.boltdb
TAG=v1

command -v skopeo >/dev/null || die "skopeo is not installed"
bench_init embedded
ensure_gatehouse_built
OCI=$(oci_image "$LAYER_MIB")
LAYER_DIGEST=$(cat "$OCI.layer-digest")
LAYER_SIZE=$(cat "$OCI.layer-size")
LAYER_HEX=${LAYER_DIGEST#sha256:}

start_distribution distribution "$RUN_DIR/dist-root"
DIST="http://127.0.0.1:$DIST_PORT"
DIST_HOST="127.0.0.1:$DIST_PORT"
start_gatehouse gatehouse root="$RUN_DIR/gh-root"
GH=$GH_PID
GATE="http://127.0.0.1:$GH_PORT"
GATE_HOST="127.0.0.1:$GH_PORT"

# Is the embedded backend there at all? (Until it lands, gatehouse answers 503 UNAVAILABLE.)
probe=$(curl -sS -o "$RUN_DIR/probe.out" -w '%{http_code}' -X POST "$GATE/v2/bench/probe/blobs/uploads/") ||
    die "gatehouse did not answer on $GATE"
if [[ $probe != 202 ]]; then
    die "the embedded backend is not working: POST /v2/bench/probe/blobs/uploads/ answered $probe ($(head -c 300 "$RUN_DIR/probe.out")); nothing measured"
fi

# --- skopeo push and pull -------------------------------------------------------------------------------------
# skopeo_time ARGS...: runs skopeo copy with a fresh blob-info cache; prints the wall time in seconds.
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
    # A fresh repository each run: the whole layer goes up every time.
    log "skopeo push $LAYER_MIB MiB run $i/$RUNS: distribution"
    push_d+=("$(skopeo_time --dest-tls-verify=false "oci:$OCI:$TAG" "docker://$DIST_HOST/bench/push$i:$TAG")")
    log "skopeo push $LAYER_MIB MiB run $i/$RUNS: gatehouse"
    push_g+=("$(skopeo_time --dest-tls-verify=false "oci:$OCI:$TAG" "docker://$GATE_HOST/bench/push$i:$TAG")")
done
# Both stored the same bytes under the same digest.
for base in "$DIST" "$GATE"; do
    code=$(curl -sS -o /dev/null -I -w '%{http_code}' "$base/v2/bench/push1/blobs/$LAYER_DIGEST")
    [[ $code == 200 ]] || die "HEAD layer blob on $base answered $code after the push"
done
for i in $(seq "$RUNS"); do
    log "skopeo pull $LAYER_MIB MiB run $i/$RUNS"
    rm -rf "$RUN_DIR/pull"
    pull_d+=("$(skopeo_time --src-tls-verify=false "docker://$DIST_HOST/bench/push1:$TAG" "oci:$RUN_DIR/pull:$TAG")")
    rm -rf "$RUN_DIR/pull"
    pull_g+=("$(skopeo_time --src-tls-verify=false "docker://$GATE_HOST/bench/push1:$TAG" "oci:$RUN_DIR/pull:$TAG")")
done
rm -rf "$RUN_DIR/pull"
rm -f "$BLOB_CACHE"

# --- blob GET, warm cache: gatehouse vs nginx (sendfile) vs distribution --------------------------------------
GH_BLOB_FILE="$RUN_DIR/gh-root/docker/registry/v2/blobs/sha256/${LAYER_HEX:0:2}/$LAYER_HEX/data"
NGINX_NOTE="gatehouse's own blob file"
if [[ ! -f $GH_BLOB_FILE ]]; then
    log "WARNING: $GH_BLOB_FILE is missing (gatehouse did not store in distribution's layout?); nginx serves distribution's copy"
    GH_BLOB_FILE="$RUN_DIR/dist-root/docker/registry/v2/blobs/sha256/${LAYER_HEX:0:2}/$LAYER_HEX/data"
    NGINX_NOTE="distribution's blob file (gatehouse's was not at the layout path)"
fi
# nginx's root is the sha256 directory, so it serves the concurrent case's blob below too.
start_nginx nginx "$(dirname "$(dirname "$(dirname "$GH_BLOB_FILE")")")"
NGX_URL="http://127.0.0.1:$NGINX_PORT/${LAYER_HEX:0:2}/$LAYER_HEX/data"
GH_URL="$GATE/v2/bench/push1/blobs/$LAYER_DIGEST"
DI_URL="$DIST/v2/bench/push1/blobs/$LAYER_DIGEST"
for u in "$NGX_URL" "$GH_URL" "$DI_URL"; do download_url "$u" "$LAYER_SIZE" >/dev/null; done
get_n=() get_g=() get_d=()
for i in $(seq "$GET_RUNS"); do
    r=$(download_url "$NGX_URL" "$LAYER_SIZE")
    get_n+=("${r%% *}")
    r=$(download_url "$GH_URL" "$LAYER_SIZE")
    get_g+=("${r%% *}")
    r=$(download_url "$DI_URL" "$LAYER_SIZE")
    get_d+=("${r%% *}")
done

# --- GET manifest by tag, no auth -----------------------------------------------------------------------------
M_PATH="/v2/bench/push1/manifests/$TAG"
read -r md_rps md_p50 md_p99 md_n md_err <<<"$(run_load distribution "$DIST$M_PATH" GET "Accept: $MANIFEST_ACCEPT")"
read -r mg_rps mg_p50 mg_p99 mg_n mg_err <<<"$(run_load gatehouse "$GATE$M_PATH" GET "Accept: $MANIFEST_ACCEPT")"
[[ -n ${md_rps:-} && -n ${mg_rps:-} ]] || die "a load run gave no result"
HWM=$(vm_hwm_kib "$GH")

# --- CONC concurrent clients on one CONC_MIB MiB blob ---------------------------------------------------------
C_FILE=$(random_file "$CONC_MIB")
C_DIGEST=$(file_digest "$C_FILE")
C_HEX=${C_DIGEST#sha256:}
C_SIZE=$(stat -c %s "$C_FILE")
upload_blob "$GATE" bench/conc "$C_FILE" "$C_DIGEST" >/dev/null
upload_blob "$DIST" bench/conc "$C_FILE" "$C_DIGEST" >/dev/null
[[ -f $RUN_DIR/gh-root/docker/registry/v2/blobs/sha256/${C_HEX:0:2}/$C_HEX/data ]] ||
    die "gatehouse did not store the $CONC_MIB MiB blob at distribution's layout path"
C_NGX="http://127.0.0.1:$NGINX_PORT/${C_HEX:0:2}/$C_HEX/data"
C_GH="$GATE/v2/bench/conc/blobs/$C_DIGEST"
C_DI="$DIST/v2/bench/conc/blobs/$C_DIGEST"
# concurrent_get URL: CONC curls at once, each the whole blob to /dev/null; prints the aggregate MiB/s.
concurrent_get() {
    local url=$1 i t0 t1 code got pids=()
    t0=$(now_s)
    for i in $(seq "$CONC"); do
        curl -sS -o /dev/null -w '%{http_code} %{size_download}\n' "$url" >"$RUN_DIR/conc.$i" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || die "a concurrent GET of $url failed"; done
    t1=$(now_s)
    for i in $(seq "$CONC"); do
        read -r code got <"$RUN_DIR/conc.$i"
        [[ $code == 200 && $got == "$C_SIZE" ]] || die "concurrent GET $url: $code, $got bytes (expected 200, $C_SIZE)"
    done
    calc "$CONC * $C_SIZE / ($t1 - $t0) / 1048576" "%.0f"
}
for u in "$C_NGX" "$C_GH" "$C_DI"; do download_url "$u" "$C_SIZE" >/dev/null; done
# Peak RSS of the concurrent runs alone: "5" resets VmHWM to the current RSS (proc(5), clear_refs).
echo 5 >"/proc/$GH/clear_refs" || die "cannot reset VmHWM of gatehouse (pid $GH)"
# cpu_ticks PID: user + system CPU of a process so far, in clock ticks (proc(5) stat fields 14 and 15).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
conc_n=() conc_g=() conc_d=()
cpu_n=0 cpu_g=0 cpu_d=0
for i in $(seq "$CONC_RUNS"); do
    log "$CONC concurrent GETs of $CONC_MIB MiB run $i/$CONC_RUNS"
    c0=$(cpu_ticks "$NGINX_PID")
    conc_n+=("$(concurrent_get "$C_NGX")")
    cpu_n=$((cpu_n + $(cpu_ticks "$NGINX_PID") - c0))
    c0=$(cpu_ticks "$GH")
    conc_g+=("$(concurrent_get "$C_GH")")
    cpu_g=$((cpu_g + $(cpu_ticks "$GH") - c0))
    c0=$(cpu_ticks "$DIST_PID")
    conc_d+=("$(concurrent_get "$C_DI")")
    cpu_d=$((cpu_d + $(cpu_ticks "$DIST_PID") - c0))
done
# Server CPU seconds per GiB served over all the concurrent runs: unlike MiB/s it hardly moves with the load
# other processes put on the machine, and it shows what the 32 clients leave to the server.
TICK=$(getconf CLK_TCK)
per_gib() { calc "$1 / $TICK / ($CONC_RUNS * $CONC * $C_SIZE / 1073741824)" "%.3f"; }
C_HWM=$(vm_hwm_kib "$GH")
C_THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$GH/status")

# --- report ---------------------------------------------------------------------------------------------------
verdict() { awk "BEGIN { exit !($1) }" && echo "ok" || echo "BELOW TARGET"; }
mbps() { calc "$LAYER_SIZE / $1 / 1e6" "%.0f"; }
bpd=$(min_of "${push_d[@]}")
bpg=$(min_of "${push_g[@]}")
bld=$(min_of "${pull_d[@]}")
blg=$(min_of "${pull_g[@]}")
bgn=$(min_of "${get_n[@]}")
bgg=$(min_of "${get_g[@]}")
bgd=$(min_of "${get_d[@]}")
max_of() { printf '%s\n' "$@" | sort -g | tail -1; }
bcn=$(max_of "${conc_n[@]}")
bcg=$(max_of "${conc_g[@]}")
bcd=$(max_of "${conc_d[@]}")
conc_ratio=$(calc "$bcg / $bcn" "%.2f")
conc_ratio_d=$(calc "$bcd / $bcn" "%.2f")
push_ratio=$(calc "$bpg / $bpd" "%.2f")
pull_ratio=$(calc "$blg / $bld" "%.2f")
get_ratio=$(calc "$bgn / $bgg" "%.2f")
get_ratio_d=$(calc "$bgn / $bgd" "%.2f")
m_ratio=$(calc "$mg_rps / $md_rps" "%.2f")

echo
echo "== gatehouse embedded registry vs distribution 2.8.2 and nginx (issue 3) =="
echo "machine: $(machine_note)"
echo "image: one gzip layer of random data, $LAYER_SIZE bytes ($LAYER_DIGEST)"
echo
echo "skopeo copy, best of $RUNS (seconds; all runs in brackets)"
printf '%-6s %-14s %-14s %s\n' "" distribution gatehouse "gatehouse time / distribution time (target <= 1.00)"
printf '%-6s %-14s %-14s %s %s\n' push "$bpd" "$bpg" "$push_ratio" "$(verdict "$push_ratio <= 1.0")"
printf '%-6s %-14s %-14s %s %s\n' pull "$bld" "$blg" "$pull_ratio" "$(verdict "$pull_ratio <= 1.0")"
echo "       push runs: distribution [${push_d[*]}] gatehouse [${push_g[*]}]"
echo "       pull runs: distribution [${pull_d[*]}] gatehouse [${pull_g[*]}]"
echo
echo "blob GET $LAYER_SIZE bytes, warm cache, curl to /dev/null, best of $GET_RUNS (nginx serves $NGINX_NOTE)"
printf '%-28s %9s %9s %s\n' server seconds MB/s "throughput / nginx"
printf '%-28s %9.3f %9s %s\n' "nginx (sendfile)" "$bgn" "$(mbps "$bgn")" "1.00"
printf '%-28s %9.3f %9s %s\n' "gatehouse embedded" "$bgg" "$(mbps "$bgg")" "$get_ratio (target >= 1.0: $(verdict "$get_ratio >= 1.0"))"
printf '%-28s %9.3f %9s %s\n' "distribution (reference)" "$bgd" "$(mbps "$bgd")" "$get_ratio_d"
echo "       runs: nginx [${get_n[*]}] gatehouse [${get_g[*]}] distribution [${get_d[*]}]"
echo
echo "GET $M_PATH (by tag), no auth, $(load_desc GET)"
printf '%-28s %10s %9s %9s %9s %7s\n' server req/s "p50 ms" "p99 ms" requests errors
printf '%-28s %10s %9s %9s %9s %7s\n' distribution "$md_rps" "$(us_to_ms "$md_p50")" "$(us_to_ms "$md_p99")" "$md_n" "$md_err"
printf '%-28s %10s %9s %9s %9s %7s\n' "gatehouse embedded" "$mg_rps" "$(us_to_ms "$mg_p50")" "$(us_to_ms "$mg_p99")" "$mg_n" "$mg_err"
echo "ratio gatehouse / distribution: ${m_ratio}x (target >= 3: $(verdict "$m_ratio >= 3"))"
echo
echo "gatehouse peak RSS (VmHWM) through all of the above: $(calc "$HWM / 1024" "%.1f") MiB (target < 64 MiB: $(verdict "$HWM < 65536"))"
echo
echo "$CONC concurrent clients, each GET of one $C_SIZE-byte blob (all at once), best of $CONC_RUNS (aggregate MiB/s)"
printf '%-28s %9s %-38s %s\n' server MiB/s "throughput / nginx" "server CPU s per GiB (all runs)"
printf '%-28s %9s %-38s %s\n' "nginx (sendfile)" "$bcn" "1.00" "$(per_gib "$cpu_n")"
printf '%-28s %9s %-38s %s\n' "gatehouse embedded" "$bcg" "$conc_ratio (target >= 1.0: $(verdict "$conc_ratio >= 1.0"))" "$(per_gib "$cpu_g")"
printf '%-28s %9s %-38s %s\n' "distribution (reference)" "$bcd" "$conc_ratio_d" "$(per_gib "$cpu_d")"
echo "       runs: nginx [${conc_n[*]}] gatehouse [${conc_g[*]}] distribution [${conc_d[*]}]"
echo "gatehouse peak RSS (VmHWM) during the concurrent runs: $(calc "$C_HWM / 1024" "%.1f") MiB (target < 64 MiB: $(verdict "$C_HWM < 65536")); threads after: $C_THREADS"
if ((md_err + mg_err > 0)); then
    echo "WARNING: error responses or socket errors under load (see the errors column): the rates above are suspect"
fi
