#!/usr/bin/env bash
# Issue 2 bench: gatehouse as a front door over distribution 2.8.2, side by side with distribution alone.
#
#   bash benches/frontdoor.sh
#
# (a) 1 GiB blob PUT and GET with curl: straight to distribution vs through gatehouse -> distribution
#     (best of RUNS, alternating the arms). Target: gatehouse >= 0.85 of direct. Gatehouse peak RSS < 64 MiB.
# (b) authenticated HEAD /v2/<repo>/manifests/<tag>, 32 keep-alive connections, 10 s, with oha (wrk cannot do
#     HEAD; see lib.sh): distribution with its own htpasswd (bcrypt cost 10) vs gatehouse (htpasswd cost 10,
#     credential cache on) -> distribution (no auth) vs distribution with no auth. Targets: gatehouse >= 35x
#     distribution+htpasswd and >= 0.8x distribution without auth; reports the p50/p99 latency gatehouse adds.
#     gatehouse runs with its defaults: metrics listener and access log on.
# (c) issue 5: the (b) gatehouse load with the metrics listener and access log on vs off, alternating, best of
#     OBS_ROUNDS. Target: within 5%.
#
# Env: GATEHOUSE_BENCH_DIR (default /tmp/gatehouse-bench), RUNS (3), BLOB_MIB (1024), WRK_DURATION (10s),
#      SLOW_DURATION (20s, distribution + htpasswd), OBS_ROUNDS (2), WRK_CONNS (32), WRK_THREADS (2),
#      BCRYPT_COST (10), LOADGEN (auto|oha|ab|wrk), GATEHOUSE_BIN, BENCH_KEEP=1 keeps the run dir.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-3}
BLOB_MIB=${BLOB_MIB:-1024}
BCRYPT_COST=${BCRYPT_COST:-10}
REPO=bench/big
SMALL_REPO=bench/tiny
TAG=v1
OBS_ROUNDS=${OBS_ROUNDS:-2}
# distribution + htpasswd runs a bcrypt per request: its first answers come after seconds, so it runs longer to
# measure its steady rate rather than its ramp-up.
SLOW_DURATION=${SLOW_DURATION:-20s}

bench_init frontdoor
ensure_gatehouse_built
BIG=$(random_file "$BLOB_MIB")
DIGEST=$(file_digest "$BIG")
SIZE=$(stat -c %s "$BIG")

htpasswd_file "$RUN_DIR/htpasswd" "$BCRYPT_COST"
AUTH=(-u "$BENCH_USER:$BENCH_PASS")

start_distribution dist-noauth "$RUN_DIR/dist-noauth-root"
DN_PORT=$DIST_PORT
start_distribution dist-htpasswd "$RUN_DIR/dist-htpasswd-root" "$RUN_DIR/htpasswd"
DA_PORT=$DIST_PORT
start_gatehouse gatehouse upstream="http://127.0.0.1:$DN_PORT" htpasswd="$RUN_DIR/htpasswd"
GH=$GH_PID
DIRECT="http://127.0.0.1:$DN_PORT"
DOOR="http://127.0.0.1:$GH_PORT"

# --- (a) 1 GiB blob up and down -------------------------------------------------------------------------------
put_direct=() put_door=() get_direct=() get_door=()
for i in $(seq "$RUNS"); do
    log "PUT $BLOB_MIB MiB run $i/$RUNS: direct"
    r=$(upload_blob "$DIRECT" "$REPO" "$BIG" "$DIGEST")
    put_direct+=("${r%% *}")
    log "PUT $BLOB_MIB MiB run $i/$RUNS: through gatehouse"
    r=$(upload_blob "$DOOR" "$REPO" "$BIG" "$DIGEST" "${AUTH[@]}")
    put_door+=("${r%% *}")
done
# Warm both paths once (page cache, connections), then time.
download_blob "$DIRECT" "$REPO" "$DIGEST" "$SIZE" >/dev/null
download_blob "$DOOR" "$REPO" "$DIGEST" "$SIZE" "${AUTH[@]}" >/dev/null
for i in $(seq "$RUNS"); do
    log "GET $BLOB_MIB MiB run $i/$RUNS"
    r=$(download_blob "$DIRECT" "$REPO" "$DIGEST" "$SIZE")
    get_direct+=("${r%% *}")
    r=$(download_blob "$DOOR" "$REPO" "$DIGEST" "$SIZE" "${AUTH[@]}")
    get_door+=("${r%% *}")
done
HWM_A=$(vm_hwm_kib "$GH")

# --- (b) authenticated HEAD manifest by tag -------------------------------------------------------------------
push_tiny_image "$DIRECT" "$SMALL_REPO" "$TAG"
push_tiny_image "http://127.0.0.1:$DA_PORT" "$SMALL_REPO" "$TAG" "${AUTH[@]}"
HDRS=("Authorization: $(basic_auth_header)" "Accept: $MANIFEST_ACCEPT")
PATH_M="/v2/$SMALL_REPO/manifests/$TAG"
read -r da_rps da_p50 da_p99 da_n da_err <<<"$(WRK_DURATION=$SLOW_DURATION run_load dist-htpasswd "http://127.0.0.1:$DA_PORT$PATH_M" HEAD "${HDRS[@]}")"
read -r gh_rps gh_p50 gh_p99 gh_n gh_err <<<"$(run_load gatehouse "$DOOR$PATH_M" HEAD "${HDRS[@]}")"
read -r dn_rps dn_p50 dn_p99 dn_n dn_err <<<"$(run_load dist-noauth "$DIRECT$PATH_M" HEAD "${HDRS[@]}")"
[[ -n ${da_rps:-} && -n ${gh_rps:-} && -n ${dn_rps:-} ]] || die "a load run gave no result"
HWM_END=$(vm_hwm_kib "$GH")

# --- (c) issue 5: the same HEAD with metrics listener and access log on (gatehouse's defaults, as in (b)) vs off --
start_gatehouse gatehouse-quiet upstream="http://127.0.0.1:$DN_PORT" htpasswd="$RUN_DIR/htpasswd" observe=off
QUIET="http://127.0.0.1:$GH_PORT"
obs_on=() obs_off=()
for i in $(seq "$OBS_ROUNDS"); do
    read -r r _ <<<"$(run_load "observe-off-$i" "$QUIET$PATH_M" HEAD "${HDRS[@]}")"
    obs_off+=("$r")
    read -r r _ <<<"$(run_load "observe-on-$i" "$DOOR$PATH_M" HEAD "${HDRS[@]}")"
    obs_on+=("$r")
done
ACCESS_LINES=$(grep -c 'gatehouse::access' "$RUN_DIR/gatehouse.log" || true)

# --- report ---------------------------------------------------------------------------------------------------
verdict() { awk "BEGIN { exit !($1) }" && echo "ok" || echo "BELOW TARGET"; }
mbps() { calc "$SIZE / $1 / 1e6" "%.0f"; }
bpd=$(min_of "${put_direct[@]}")
bpg=$(min_of "${put_door[@]}")
bgd=$(min_of "${get_direct[@]}")
bgg=$(min_of "${get_door[@]}")
put_ratio=$(calc "$bpd / $bpg" "%.2f")
get_ratio=$(calc "$bgd / $bgg" "%.2f")
r_auth=$(calc "$gh_rps / $da_rps" "%.1f")
r_noauth=$(calc "$gh_rps / $dn_rps" "%.2f")

echo
echo "== gatehouse front door vs distribution 2.8.2 (issue 2) =="
echo "machine: $(machine_note)"
echo
echo "(a) $BLOB_MIB MiB random blob, curl on loopback, best of $RUNS (all runs in seconds in brackets)"
printf '%-5s %-30s %-30s %s\n' "" "distribution direct" "gatehouse -> distribution" "ratio gh/direct (target >= 0.85)"
printf '%-5s %-30s %-30s %s %s\n' PUT "$(printf '%.2f s %5s MB/s' "$bpd" "$(mbps "$bpd")")" \
    "$(printf '%.2f s %5s MB/s' "$bpg" "$(mbps "$bpg")")" "$put_ratio" "$(verdict "$put_ratio >= 0.85")"
printf '%-5s %-30s %-30s %s %s\n' GET "$(printf '%.2f s %5s MB/s' "$bgd" "$(mbps "$bgd")")" \
    "$(printf '%.2f s %5s MB/s' "$bgg" "$(mbps "$bgg")")" "$get_ratio" "$(verdict "$get_ratio >= 0.85")"
echo "      PUT runs: direct [${put_direct[*]}] gatehouse [${put_door[*]}]"
echo "      GET runs: direct [${get_direct[*]}] gatehouse [${get_door[*]}]"
echo "gatehouse peak RSS (VmHWM) after (a): $(calc "$HWM_A / 1024" "%.1f") MiB (target < 64 MiB: $(verdict "$HWM_A < 65536"))"
echo
echo "(b) authenticated HEAD $PATH_M, $(load_desc HEAD) ($SLOW_DURATION for distribution + htpasswd), bcrypt cost $BCRYPT_COST"
printf '%-52s %10s %9s %9s %9s %7s\n' arm req/s "p50 ms" "p99 ms" requests errors
printf '%-52s %10s %9s %9s %9s %7s\n' "distribution + its own htpasswd" "$da_rps" "$(us_to_ms "$da_p50")" "$(us_to_ms "$da_p99")" "$da_n" "$da_err"
printf '%-52s %10s %9s %9s %9s %7s\n' "gatehouse (htpasswd, cache on) -> distribution" "$gh_rps" "$(us_to_ms "$gh_p50")" "$(us_to_ms "$gh_p99")" "$gh_n" "$gh_err"
printf '%-52s %10s %9s %9s %9s %7s\n' "distribution, no auth" "$dn_rps" "$(us_to_ms "$dn_p50")" "$(us_to_ms "$dn_p99")" "$dn_n" "$dn_err"
echo "ratio gatehouse / distribution+htpasswd: ${r_auth}x (target >= 35: $(verdict "$r_auth >= 35"))"
echo "ratio gatehouse / distribution no auth:  ${r_noauth}x (target >= 0.8: $(verdict "$r_noauth >= 0.8"))"
echo "latency added by gatehouse vs distribution no auth: p50 $(calc "($gh_p50 - $dn_p50) / 1000" "%+.2f") ms, p99 $(calc "($gh_p99 - $dn_p99) / 1000" "%+.2f") ms"
echo "gatehouse peak RSS (VmHWM) at the end: $(calc "$HWM_END / 1024" "%.1f") MiB"
best_on=$(printf '%s\n' "${obs_on[@]}" | sort -g | tail -1)
best_off=$(printf '%s\n' "${obs_off[@]}" | sort -g | tail -1)
echo
echo "(c) issue 5: metrics listener + access log on (defaults) vs off, same HEAD load, best of $OBS_ROUNDS alternating"
echo "    req/s on [${obs_on[*]}] off [${obs_off[*]}]; the access log wrote $ACCESS_LINES lines"
echo "    best on / best off: $(calc "$best_on / $best_off" "%.3f") (target: within 5%, i.e. >= 0.95: $(verdict "$best_on / $best_off >= 0.95"))"
echo "    (metric counters are always updated; \"off\" turns off the listener and the access log, the toggles there are)"
if ((da_err + gh_err + dn_err > 0)); then
    echo "WARNING: error responses or socket errors under load (see the errors column): the rates above are suspect"
fi
