#!/usr/bin/env bash
# Issue 13 bench: time to first paint of the web UI's repository list in headless Chromium, with one repository
# and then with 10,001 (written in distribution's layout), in one run, reported with their ratio; and when the
# whole 10,001-name catalog has arrived (ten `_catalog?n=1000` pages).
#
#   bash benches/ui.sh            # PROFILE=release (default) or PROFILE=dev
#
# It runs the ignored integration test `ui_lists_10000_repositories_and_reports_time_to_first_paint` (real
# gatehouse binary, real Chromium over the DevTools pipe) and prints its figure line. Needs chromium and skopeo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PROFILE=${PROFILE:-release}
args=(test --test integration)
[ "$PROFILE" = release ] && args+=(--release)
cargo "${args[@]}" ui_lists_10000 -- --ignored --nocapture 2>&1 | grep -E '^ui: |test result|panicked'
