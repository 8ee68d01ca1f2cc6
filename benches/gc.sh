#!/usr/bin/env bash
# Issue 11 bench: garbage collection of a store with BLOBS (10,000) blobs in REPOS (500) repositories.
#
#   bash benches/gc.sh
#
#  - Offline: `gatehouse gc` vs distribution 2.8.2's `docker-registry garbage-collect` on two copies of the same
#    store, side by side, best of RUNS (fresh copies every run), with each one's peak RSS (/usr/bin/time -v).
#    The blob sets they leave are compared (they must be identical). Target: gatehouse's time <= 0.5 of
#    distribution's. The copies live on GC_FS: `here` (the run directory's own filesystem), `ext4` (a fresh
#    ext4 image with a journal, loop-mounted: a VPS disk as Debian and Ubuntu make it; needs root), or
#    `tmpfs` (what the code costs, no disk at all). The filesystem and its mount options are printed: where
#    ext4 has no journal and is mounted `discard`, every freed block is a synchronous discard, and both
#    collectors' deletes wait on the disk.
#  - Online: p99 of GET manifest (WRK_CONNS connections, WRK_DURATION) and blob push throughput (PUSHES
#    sequential monolithic pushes of PUSH_KIB KiB) against a gatehouse whose collector runs back to back
#    (POST /gc in a loop, the default 1 h grace, GC_BUDGET: the collector's GATEHOUSE_GC_BUDGET, unset = the
#    server's default of 25%) vs one with no collector, each on its own copy of the store. Target: >= 0.9 of
#    the rate without GC for pushes, p99 within 1/0.9 of it for GETs.
#
# The store is written straight into distribution's layout by a small Python script (tiny blobs; every image is
# a Docker schema 2 manifest, a config and LAYERS_PER_IMAGE layers); a quarter of the images were deleted by
# digest (revision link gone, as a DELETE leaves it), so their blobs are garbage. Every file is dated two days
# back, so the grace does not protect them.
#
# Env: GATEHOUSE_BENCH_DIR (default /tmp/gatehouse-bench), RUNS (3), REPOS (500), BLOBS (10000),
#      LAYERS_PER_IMAGE (3), PUSHES (200), PUSH_KIB (64), WRK_DURATION (10s), WRK_CONNS (32), WRK_THREADS (2),
#      GC_BUDGET (unset), GC_FS (here), OFFLINE_ONLY (0: 1 skips the online part), GATEHOUSE_BIN,
#      OLD_GATEHOUSE_BIN (another build, timed offline beside the two: before/after), BENCH_KEEP=1.
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-3}
REPOS=${REPOS:-500}
BLOBS=${BLOBS:-10000}
LAYERS_PER_IMAGE=${LAYERS_PER_IMAGE:-3}
PUSHES=${PUSHES:-200}
PUSH_KIB=${PUSH_KIB:-64}
GC_FS=${GC_FS:-here}
OFFLINE_ONLY=${OFFLINE_ONLY:-0}

bench_init gc
[[ -x /usr/bin/time ]] || die "/usr/bin/time is not installed (apt-get install time)"
ensure_gatehouse_built

PRISTINE="$RUN_DIR/pristine"
log "writing a store of $BLOBS blobs in $REPOS repositories to $PRISTINE"
python3 - "$PRISTINE" "$REPOS" "$BLOBS" "$LAYERS_PER_IMAGE" <<'PY'
import hashlib, json, os, sys, time
root, repos, blobs, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
v2 = os.path.join(root, "docker/registry/v2")
old = time.time() - 2 * 86400
per_image = layers + 2                      # manifest, config, layers
images = max(1, blobs // (repos * per_image))
written = []

def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    written.append(path)

def blob(data):
    h = hashlib.sha256(data).hexdigest()
    put(f"{v2}/blobs/sha256/{h[:2]}/{h}/data", data)
    return "sha256:" + h

def link(path, digest):
    put(path, digest.encode())

n = 0
for r in range(repos):
    name = f"bench/r{r:04d}"
    base = f"{v2}/repositories/{name}"
    for i in range(images):
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                             "config": {"Labels": {"r": str(r), "i": str(i)}}}).encode()
        c = blob(config)
        ls = []
        for l in range(layers):
            data = f"layer {r} {i} {l}\n".encode() * 4
            ls.append((blob(data), len(data)))
        m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                   "size": len(config), "digest": c},
                        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                    "size": s, "digest": d} for d, s in ls]}).encode()
        md = blob(m)
        for d in [c] + [d for d, _ in ls]:
            link(f"{base}/_layers/sha256/{d[7:]}/link", d)
        n += per_image
        if i % 4 == 3:
            continue                        # deleted by digest: no revision link, no tag; its blobs are garbage
        link(f"{base}/_manifests/revisions/sha256/{md[7:]}/link", md)
        tag = f"t{i}"
        link(f"{base}/_manifests/tags/{tag}/current/link", md)
        link(f"{base}/_manifests/tags/{tag}/index/sha256/{md[7:]}/link", md)
for p in written:
    os.utime(p, (old, old))
print(f"{n} blobs, {images} images per repository", file=sys.stderr)
PY

# The blob set under a root, sorted.
blob_set() { (cd "$1/docker/registry/v2/blobs" && find . -name data | sort); }

# Where the offline copies live (GC_FS).
STORE="$RUN_DIR/store"
mkdir -p "$STORE"
case $GC_FS in
here) ;;
ext4)
    command -v mkfs.ext4 >/dev/null || die "GC_FS=ext4 needs mkfs.ext4 (apt-get install e2fsprogs)"
    truncate -s 4G "$RUN_DIR/ext4.img"
    mkfs.ext4 -q -F "$RUN_DIR/ext4.img"
    mount -o loop "$RUN_DIR/ext4.img" "$STORE" || die "GC_FS=ext4: could not loop-mount an image (root is needed)"
    BENCH_MOUNTS+=("$STORE")
    ;;
tmpfs)
    mount -t tmpfs -o size=4G tmpfs "$STORE" || die "GC_FS=tmpfs: could not mount a tmpfs (root is needed)"
    BENCH_MOUNTS+=("$STORE")
    ;;
*) die "GC_FS=$GC_FS: expected here, ext4 or tmpfs" ;;
esac
# What the store's filesystem is: type, options, and for ext4 whether it keeps a journal.
store_fs() {
    local src fstype opts journal=""
    read -r src fstype opts < <(findmnt -no SOURCE,FSTYPE,OPTIONS -T "$STORE")
    if [[ $fstype == ext4 ]]; then
        local dev
        dev=$(basename "$(readlink -f "$src")")
        case $(cat "/sys/fs/ext4/$dev/journal_task" 2>/dev/null) in
        "" | "<none>") journal=", no journal" ;;
        *) journal=", journal" ;;
        esac
    fi
    echo "$fstype ($opts$journal)"
}
log "offline copies on GC_FS=$GC_FS: $(store_fs)"

cat >"$RUN_DIR/dist-gc.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $STORE/dist
  delete:
    enabled: true
http:
  addr: 127.0.0.1:1
EOF
cat >"$RUN_DIR/gh-gc.toml" <<EOF
[server]
listen = "127.0.0.1:1"
[auth]
mode = "none"
[storage]
root = "$STORE/gh"
EOF

# timed LABEL CMD...: runs CMD under /usr/bin/time -v; prints "<seconds> <peak RSS KiB>".
timed() {
    local label=$1
    shift
    env -i PATH="$PATH" /usr/bin/time -v -o "$RUN_DIR/time-$label.txt" "$@" >"$RUN_DIR/out-$label.txt" 2>&1 ||
        die "$label failed: $(tail -5 "$RUN_DIR/out-$label.txt")"
    awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]}
        /Maximum resident set size/ {rss = $2} END {print s, rss}' "$RUN_DIR/time-$label.txt"
}

sed "s#$STORE/gh#$STORE/old#" "$RUN_DIR/gh-gc.toml" >"$RUN_DIR/old-gc.toml"
gh_times=() dist_times=() old_times=() gh_rss=0 dist_rss=0
before=$(blob_set "$PRISTINE" | wc -l)
for run in $(seq "$RUNS"); do
    arms=(gh dist)
    [[ -z ${OLD_GATEHOUSE_BIN:-} ]] || arms+=(old)
    for arm in "${arms[@]}"; do
        rm -rf "${STORE:?}/$arm"
        cp -a "$PRISTINE" "$STORE/$arm"
    done
    sync
    # Rotate which goes first: the first after the copy pays for what the copy left (seen here: 0.5 s more).
    n=${#arms[@]} order=()
    for i in $(seq 0 $((n - 1))); do order+=("${arms[$(((i + run - 1) % n))]}"); done
    for arm in "${order[@]}"; do
        if [[ $arm == old ]]; then
            out=$(timed "old-$run" "$OLD_GATEHOUSE_BIN" gc --config "$RUN_DIR/old-gc.toml")
            read -r t rss <<<"$out"
            old_times+=("$t")
        elif [[ $arm == gh ]]; then
            out=$(timed "gh-$run" "$GATEHOUSE_BIN" gc --config "$RUN_DIR/gh-gc.toml")
            read -r t rss <<<"$out"
            gh_times+=("$t")
            if ((rss > gh_rss)); then gh_rss=$rss; fi
        else
            out=$(timed "dist-$run" "$DIST_BIN" garbage-collect "$RUN_DIR/dist-gc.yml")
            read -r t rss <<<"$out"
            dist_times+=("$t")
            if ((rss > dist_rss)); then dist_rss=$rss; fi
        fi
        log "run $run: $arm ${t}s, peak RSS $((rss / 1024)) MiB"
    done
    if ! diff <(blob_set "$STORE/gh") <(blob_set "$STORE/dist") >"$RUN_DIR/blob-diff.txt"; then
        die "the blob sets left differ ($(wc -l <"$RUN_DIR/blob-diff.txt") lines, see $RUN_DIR/blob-diff.txt)"
    fi
    rm -rf "$STORE/old"
done
after=$(blob_set "$STORE/gh" | wc -l)
gh_best=$(min_of "${gh_times[@]}")
dist_best=$(min_of "${dist_times[@]}")

# ---- online: the same load against a gatehouse with and without a collector running back to back ----
rm -rf "$STORE/gh" "$STORE/dist"
offline_table() {
    printf '| %-44s | %14s | %14s | %8s |\n' "" "gatehouse" "distribution" "ratio"
    printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..10})"
    printf '| %-44s | %13ss | %13ss | %8s |\n' "offline gc, wall time" "$gh_best" "$dist_best" "$(calc "$gh_best / $dist_best" "%.2f")"
    printf '| %-44s | %10s MiB | %10s MiB | %8s |\n' "offline gc, peak RSS" "$((gh_rss / 1024))" "$((dist_rss / 1024))" "$(calc "$gh_rss / $dist_rss" "%.2f")"
    if [[ -n ${OLD_GATEHOUSE_BIN:-} ]]; then
        local old_best
        old_best=$(min_of "${old_times[@]}")
        printf '| %-44s | %13ss | %14s | %8s |\n' "offline gc, OLD_GATEHOUSE_BIN (new/old)" "$old_best" "" "$(calc "$gh_best / $old_best" "%.2f")"
    fi
    echo
    echo "Offline copies on GC_FS=$GC_FS: $(store_fs). All times: gatehouse ${gh_times[*]}; distribution ${dist_times[*]}${OLD_GATEHOUSE_BIN:+; old ${old_times[*]}}."
}
if [[ $OFFLINE_ONLY == 1 ]]; then
    echo
    echo "## gc: $before blobs in $REPOS repositories ($after left), best of $RUNS, offline only"
    machine_note
    echo
    offline_table
    echo "Ratio: offline gatehouse/distribution time (target <= 0.5)."
    exit 0
fi
cp -a "$PRISTINE" "$RUN_DIR/on-nogc"
cp -a "$PRISTINE" "$RUN_DIR/on-gc"
start_gatehouse nogc root="$RUN_DIR/on-nogc" observe=on
NOGC_PORT=$GH_PORT
gc_env=()
[[ -z ${GC_BUDGET:-} ]] || gc_env=(env=GATEHOUSE_GC_BUDGET="$GC_BUDGET")
start_gatehouse gc root="$RUN_DIR/on-gc" observe=on "${gc_env[@]}"
GC_PORT=$GH_PORT GC_METRICS=$GH_METRICS_PORT
# The first run deletes the garbage; the runs during the load only mark and sweep.
curl -sS -f -o /dev/null -X POST "http://127.0.0.1:$GC_METRICS/gc" || die "POST /gc failed"

gc_loop() {
    while :; do curl -s -o /dev/null -X POST "http://127.0.0.1:$GC_METRICS/gc" 2>/dev/null || sleep 0.1; done
}
runs_total() {
    curl -sS "http://127.0.0.1:$GC_METRICS/metrics" |
        awk '/^gatehouse_gc_runs_total\{result="ok"\}/ {print $2}'
}

mkdir -p "$RUN_DIR/push"
for i in $(seq "$PUSHES"); do head -c $((PUSH_KIB * 1024)) /dev/urandom >"$RUN_DIR/push/$i"; done
# push_rate PORT REPO: pushes/s of the PUSHES files.
push_rate() {
    local port=$1 repo=$2 t0 t1 i
    t0=$(now_s)
    for i in $(seq "$PUSHES"); do
        upload_blob "http://127.0.0.1:$port" "$repo" "$RUN_DIR/push/$i" "$(file_digest "$RUN_DIR/push/$i")" >/dev/null
    done
    t1=$(now_s)
    calc "$PUSHES / ($t1 - $t0)" "%.1f"
}

MANIFEST_PATH=/v2/bench/r0001/manifests/t0
declare -A get_p99 get_rps push gc_runs
for arm in nogc gc nogc2 gc2; do
    case $arm in nogc*) port=$NOGC_PORT ;; gc*) port=$GC_PORT ;; esac
    loop_pid=""
    if [[ $arm == gc* ]]; then
        gc_loop &
        loop_pid=$!
        BENCH_PIDS+=("$loop_pid")
        runs0=$(runs_total)
    fi
    out=$(run_load "get-$arm" "http://127.0.0.1:$port$MANIFEST_PATH" GET "Accept: $MANIFEST_ACCEPT")
    read -r rps _ p99 _ _ <<<"$out"
    rate=$(push_rate "$port" "push/$arm")
    if [[ -n $loop_pid ]]; then
        stop_pid "$loop_pid"
        gc_runs[$arm]=$(calc "$(runs_total) - $runs0" "%d")
        log "$arm: ${gc_runs[$arm]} collector runs during the load"
    fi
    get_p99[$arm]=$p99 get_rps[$arm]=$rps push[$arm]=$rate
    log "$arm: GET manifest ${rps} req/s p99 ${p99} us; blob push ${rate}/s"
done
best_p99() { min_of "${get_p99[$1]}" "${get_p99[${1}2]}"; }
best_push() { printf '%s\n' "${push[$1]}" "${push[${1}2]}" | sort -g | tail -1; }

echo
echo "## gc: $before blobs in $REPOS repositories ($after left), best of $RUNS"
machine_note
echo
offline_table
echo
printf '| %-44s | %14s | %14s | %8s |\n' "gatehouse online" "collector on" "collector off" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..10})"
p_on=$(best_p99 gc) p_off=$(best_p99 nogc)
printf '| %-44s | %11s ms | %11s ms | %8s |\n' "GET manifest p99 (lower is better)" "$(us_to_ms "$p_on")" "$(us_to_ms "$p_off")" "$(calc "$p_off / $p_on" "%.2f")"
printf '| %-44s | %14s | %14s | %8s |\n' "GET manifest req/s" "${get_rps[gc]}" "${get_rps[nogc]}" "$(calc "${get_rps[gc]} / ${get_rps[nogc]}" "%.2f")"
b_on=$(best_push gc) b_off=$(best_push nogc)
printf '| %-44s | %12s/s | %12s/s | %8s |\n' "blob pushes ($PUSH_KIB KiB, sequential)" "$b_on" "$b_off" "$(calc "$b_on / $b_off" "%.2f")"
echo
echo "Collector budget: ${GC_BUDGET:-default (25%)}; runs during the two loaded arms: ${gc_runs[gc]} and ${gc_runs[gc2]}."
echo "Ratios: offline gatehouse/distribution time (target <= 0.5); online p99 off/on and pushes on/off (target >= 0.9)."
