#!/usr/bin/env bash
# Issue 4 bench: what gatehouse's verified-credential cache buys at bcrypt cost 12 (passlib's and
# `gatehouse passwd`'s default).
#
#   bash benches/auth_cache.sh
#
# Authenticated HEAD /v2/<repo>/manifests/<tag>, 32 keep-alive connections, every request carrying the same Basic
# credentials (as docker and skopeo do): gatehouse with [auth] cache_ttl_seconds = 600 vs the same gatehouse with
# cache_ttl_seconds = 0 (bcrypt on every request), both in front of distribution without auth (BACKEND=upstream,
# the default) or on the embedded backend (BACKEND=embedded). distribution with its own htpasswd at the same cost
# is measured too, for reference (skip it with DIST_REFERENCE=0).
#
# Env: GATEHOUSE_BENCH_DIR (default /tmp/gatehouse-bench), BCRYPT_COST (12), BACKEND (upstream|embedded),
#      DIST_REFERENCE (1), WRK_DURATION (10s), SLOW_DURATION (30s: the arms without a cache), WRK_CONNS (32),
#      WRK_THREADS (2), GATEHOUSE_BIN, BENCH_KEEP=1 keeps the run dir.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BCRYPT_COST=${BCRYPT_COST:-12}
BACKEND=${BACKEND:-upstream}
DIST_REFERENCE=${DIST_REFERENCE:-1}
# The arms that run bcrypt on every request finish only a few requests a second: they run longer, so that the rate
# is not just the first round of 32 requests.
SLOW_DURATION=${SLOW_DURATION:-30s}
REPO=bench/tiny
TAG=v1

bench_init auth-cache
ensure_gatehouse_built
htpasswd_file "$RUN_DIR/htpasswd" "$BCRYPT_COST"
AUTH=(-u "$BENCH_USER:$BENCH_PASS")

case $BACKEND in
upstream)
    start_distribution dist-noauth "$RUN_DIR/dist-root"
    push_tiny_image "http://127.0.0.1:$DIST_PORT" "$REPO" "$TAG"
    target=(upstream="http://127.0.0.1:$DIST_PORT")
    backend_note="-> distribution (no auth)"
    ;;
embedded)
    # Both gatehouses share one embedded root; the image is pushed once through the first.
    target=(root="$RUN_DIR/gh-root")
    backend_note="embedded"
    ;;
*) die "BACKEND must be upstream or embedded, not $BACKEND" ;;
esac

start_gatehouse gh-cache "${target[@]}" htpasswd="$RUN_DIR/htpasswd" cache_ttl=600
C_PORT=$GH_PORT
C_PID=$GH_PID
start_gatehouse gh-nocache "${target[@]}" htpasswd="$RUN_DIR/htpasswd" cache_ttl=0
N_PORT=$GH_PORT
N_PID=$GH_PID
if [[ $BACKEND == embedded ]]; then
    push_tiny_image "http://127.0.0.1:$C_PORT" "$REPO" "$TAG" "${AUTH[@]}" ||
        die "the embedded backend is not working (push through gatehouse failed)"
fi

HDRS=("Authorization: $(basic_auth_header)" "Accept: $MANIFEST_ACCEPT")
M_PATH="/v2/$REPO/manifests/$TAG"
read -r c_rps c_p50 c_p99 c_n c_err <<<"$(run_load gh-cache "http://127.0.0.1:$C_PORT$M_PATH" HEAD "${HDRS[@]}")"
stop_pid "$C_PID" # one gatehouse at a time on the CPUs
read -r n_rps n_p50 n_p99 n_n n_err <<<"$(WRK_DURATION=$SLOW_DURATION run_load gh-nocache "http://127.0.0.1:$N_PORT$M_PATH" HEAD "${HDRS[@]}")"
[[ -n ${c_rps:-} && -n ${n_rps:-} ]] || die "a load run gave no result"
stop_pid "$N_PID"
if [[ $DIST_REFERENCE == 1 ]]; then
    start_distribution dist-htpasswd "$RUN_DIR/dist-htpasswd-root" "$RUN_DIR/htpasswd"
    push_tiny_image "http://127.0.0.1:$DIST_PORT" "$REPO" "$TAG" "${AUTH[@]}"
    read -r d_rps d_p50 d_p99 d_n d_err <<<"$(WRK_DURATION=$SLOW_DURATION run_load dist-htpasswd "http://127.0.0.1:$DIST_PORT$M_PATH" HEAD "${HDRS[@]}")"
fi

ratio=$(calc "$c_rps / $n_rps" "%.1f")
echo
echo "== gatehouse credential cache at bcrypt cost $BCRYPT_COST (issue 4) =="
echo "machine: $(machine_note)"
echo "authenticated HEAD $M_PATH, $(load_desc HEAD) ($SLOW_DURATION for the arms without a cache), gatehouse $backend_note"
printf '%-46s %10s %9s %9s %9s %7s\n' arm req/s "p50 ms" "p99 ms" requests errors
printf '%-46s %10s %9s %9s %9s %7s\n' "gatehouse, cache on (cache_ttl_seconds = 600)" "$c_rps" "$(us_to_ms "$c_p50")" "$(us_to_ms "$c_p99")" "$c_n" "$c_err"
printf '%-46s %10s %9s %9s %9s %7s\n' "gatehouse, cache off (cache_ttl_seconds = 0)" "$n_rps" "$(us_to_ms "$n_p50")" "$(us_to_ms "$n_p99")" "$n_n" "$n_err"
if [[ $DIST_REFERENCE == 1 ]]; then
    printf '%-46s %10s %9s %9s %9s %7s\n' "distribution + its own htpasswd (reference)" "$d_rps" "$(us_to_ms "$d_p50")" "$(us_to_ms "$d_p99")" "$d_n" "$d_err"
fi
echo "ratio cache on / cache off: ${ratio}x"
if [[ $DIST_REFERENCE == 1 ]]; then
    echo "ratio cache on / distribution + htpasswd: $(calc "$c_rps / $d_rps" "%.1f")x"
fi
if ((c_err + n_err + ${d_err:-0} > 0)); then
    echo "WARNING: error responses or socket errors under load (see the errors column): the rates above are suspect"
fi
