#!/usr/bin/env bash
# The operations view (deploy/prometheus, deploy/grafana), without a running
# Prometheus: `promtool check rules` on the rules, `promtool test rules` on
# their unit tests (alerts.test.yml: each alert fires on a lasting breach and
# stays silent just under its threshold), a negative control (a threshold
# moved must fail those tests), and the Grafana dashboard parsed, every panel
# with a query. promtool comes from Debian's `prometheus` package, installed
# when missing. That every metric the rules and the dashboard query is one
# the server exports is checked by server/tests/ops_view.rs.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
    apt_install "promtool checks the alerting rules" prometheus
fi

rules=deploy/prometheus/alerts.yml
timeout 60 promtool check rules "$rules" || die "promtool check rules $rules failed"
(cd deploy/prometheus && timeout 120 promtool test rules alerts.test.yml) ||
    die "promtool test rules deploy/prometheus/alerts.test.yml failed"
say "rules valid and their unit tests pass"

# Negative control: the pool alert's threshold lowered to 80% makes the
# 85% case fire, which its test forbids.
scratch=$(mktemp -d)
on_exit "rm -rf '$scratch'"
cp deploy/prometheus/alerts.test.yml "$scratch/"
sed 's/max(db_connection_pool_usage) > 0.9/max(db_connection_pool_usage) > 0.8/' "$rules" >"$scratch/alerts.yml"
grep -q 'db_connection_pool_usage) > 0.8' "$scratch/alerts.yml" || die "negative control did not apply"
if (cd "$scratch" && timeout 120 promtool test rules alerts.test.yml >/dev/null 2>&1); then
    die "negative control: a pool alert at 80% passed the tests"
fi
say "negative control caught: a threshold moved fails the rule tests"

timeout 30 python3 - deploy/grafana/ticketbench.json <<'PY' || die "dashboard check failed"
import json, sys
path = sys.argv[1]
with open(path) as f:
    board = json.load(f)
panels = board["panels"]
assert panels, "no panels"
for p in panels:
    exprs = [t.get("expr", "") for t in p.get("targets", [])]
    assert exprs and all(exprs), f"panel {p.get('title')!r} has no query"
print(f"{path}: {len(panels)} panels, each with a query")
PY
