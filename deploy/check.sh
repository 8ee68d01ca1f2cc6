#!/usr/bin/env bash
# Checks deploy/ against the code: every gatehouse_* metric the Grafana dashboard uses is defined in
# src/metrics.rs (a histogram's _bucket/_sum/_count series count as its base name), and the dashboard is JSON.
# When the tools are present it also checks the container config (gatehouse check-config), the Prometheus
# scrape config (promtool) and the compose files (docker compose / docker-compose).
# Exit status: 0 when everything checked passed, 1 otherwise.
#
#   bash deploy/check.sh
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
metrics_rs="$root/src/metrics.rs"
dashboard="$here/grafana/gatehouse.json"
status=0

fail() { echo "FAIL: $*" >&2; status=1; }
ok() { echo "ok: $*"; }

# Metric names are string literals in src/metrics.rs: "gatehouse_...".
defined() { grep -qF "\"$1\"" "$metrics_rs" "$root/src/gc/metrics.rs"; }

if python3 -m json.tool "$dashboard" >/dev/null; then
    ok "grafana/gatehouse.json parses as JSON"
else
    fail "grafana/gatehouse.json is not valid JSON"
fi

used="$(grep -oE 'gatehouse_[a-z_]+' "$dashboard" | sort -u)"
[ -n "$used" ] || fail "no gatehouse_* metric found in the dashboard"
count=0
for name in $used; do
    count=$((count + 1))
    if defined "$name"; then
        continue
    fi
    base="$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")"
    if [ "$base" != "$name" ] && defined "$base"; then
        # A histogram's series: the base must be registered as a histogram (the nearest constructor call
        # above its name is histogram(...) or HistogramVec/Histogram::new).
        kind="$(awk -v name="\"$base\"" '
            /(counter|gauge|histogram)\(|(IntCounter|IntCounterVec|Counter|CounterVec|IntGauge|IntGaugeVec|Gauge|GaugeVec|Histogram|HistogramVec)::new\(/ { last = $0 }
            index($0, name) { print last; exit }' "$metrics_rs")"
        if grep -qE 'histogram\(|Histogram(Vec)?::new\(' <<<"$kind"; then
            continue
        fi
        fail "$name: $base is defined in src/metrics.rs but not as a histogram"
        continue
    fi
    fail "$name is used by the dashboard but not defined in src/metrics.rs"
done
[ "$status" -eq 0 ] && ok "all $count metric names used by the dashboard exist in src/metrics.rs"

# Informational: metrics the dashboard does not show.
for name in $(grep -oE '"gatehouse_[a-z_]+"' "$metrics_rs" | tr -d '"' | sort -u); do
    grep -qE "${name}(_bucket|_sum|_count)?([^a-z_]|\$)" "$dashboard" || echo "note: $name is not on the dashboard"
done

bin="$root/target/debug/gatehouse"
[ -x "$bin" ] || bin="$root/target/release/gatehouse"
if [ -x "$bin" ]; then
    if env -i PATH="$PATH" "$bin" check-config --config "$here/gatehouse.container.toml" >/dev/null; then
        ok "gatehouse.container.toml passes check-config"
    else
        fail "gatehouse.container.toml fails check-config"
    fi
else
    echo "skip: no gatehouse binary in target/ (cargo build) for check-config"
fi

if command -v promtool >/dev/null; then
    if promtool check config "$here/prometheus/scrape.yml" >/dev/null; then
        ok "prometheus/scrape.yml passes promtool check config"
    else
        fail "prometheus/scrape.yml fails promtool check config"
    fi
else
    echo "skip: no promtool"
fi

compose=""
if docker compose version >/dev/null 2>&1; then
    compose="docker compose"
elif command -v docker-compose >/dev/null; then
    compose="docker-compose"
fi
if [ -n "$compose" ]; then
    for f in docker-compose.yml docker-compose.front.yml; do
        if (cd "$here" && $compose -f "$f" config -q); then
            ok "$f passes $compose config"
        else
            fail "$f fails $compose config"
        fi
    done
else
    echo "skip: no docker compose for the compose files"
fi

exit "$status"
