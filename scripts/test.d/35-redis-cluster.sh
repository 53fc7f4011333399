#!/usr/bin/env bash
# The real stack on a Redis Cluster: starts a local cluster of three
# primaries (scripts/services.sh start-cluster; stopped again at exit when
# this suite started it) beside the rest of the stack, then runs
#   - the contract, race, seat-map and queue suites' real-stack tests with
#     the cluster as their Redis (REDIS_URL set to its redis+cluster://
#     URL; the queue suite's SSE streams are woken over the cluster's
#     pub/sub);
#   - server/tests/redis_cluster.rs: each event's keys on the one shard
#     that owns its hash tag, a sale on every shard, and the negative
#     control (a script over untagged keys is refused with CROSSSLOT).
# The tests run within TEST_SECS (default 900) after they are built.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$(dirname "$0")/../.."

TEST_SECS=${TEST_SECS:-900}
SUITES=(--test contract --test contract_buying --test race --test seatmap --test seatmap_races --test queue)

services_start_own
if ! scripts/services.sh status-cluster | grep -q ' up'; then
    on_exit "scripts/services.sh stop-cluster"
fi
scripts/services.sh start-cluster
eval "$(scripts/services.sh env)"

say "building the test binaries"
cargo test -p ticket-server --locked "${SUITES[@]}" --test redis_cluster --no-run

say "contract, race, seat-map and queue tests on the Redis Cluster ($REDIS_CLUSTER_URL)"
# The memory-backend variants have nothing to do with Redis.
REDIS_URL=$REDIS_CLUSTER_URL timeout "$TEST_SECS" \
    cargo test -p ticket-server --locked "${SUITES[@]}" -- --skip memory

say "the cluster's own tests (server/tests/redis_cluster.rs)"
timeout "$TEST_SECS" cargo test -p ticket-server --locked --test redis_cluster -- --include-ignored
