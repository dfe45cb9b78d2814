#!/usr/bin/env bash
# The demo: starts the local ECS simulator, builds specs/demo.yaml into an image, shows the result.
# Needs root (the simulator's instances are OpenSSH servers in their own namespaces). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-python
cargo build --quiet --bin bakerd
bakerd=target/debug/bakerd

# sshd's ChrootDirectory wants root-owned, non-world-writable parents: keep the data under target/.
data=target/demo
mkdir -p "$data" && chmod 0755 target "$data"
"$bakerd" sim --listen 127.0.0.1:0 --data-dir "$data/sim" --profile fast >"$data/sim.out" 2>"$data/sim.log" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q 'listening on' "$data/sim.out" 2>/dev/null && break
  sleep 0.1
done
endpoint=$(sed -n 's/^bakerd-sim listening on //p' "$data/sim.out")
[ -n "$endpoint" ] || { echo "the simulator did not start; see $data/sim.log" >&2; exit 1; }
echo "== simulator at $endpoint (data in $data/sim)"

export BAKERD_ECS_ENDPOINT="$endpoint"
echo "== bakerd apply specs/demo.yaml"
"$bakerd" apply specs/demo.yaml --state-dir "$data/state"
echo "== bakerd apply specs/demo.yaml (again: nothing to do)"
"$bakerd" apply specs/demo.yaml --state-dir "$data/state"
echo "== bakerd status"
"$bakerd" status --state-dir "$data/state"
build=$("$bakerd" status --state-dir "$data/state" | tail -n 1 | cut -d' ' -f1)
echo "== bakerd show $build"
"$bakerd" show "$build" --state-dir "$data/state"
echo "== what the simulator holds now (live resources)"
# /_sim/* needs the token the simulator wrote (0600) into its data dir at start.
curl -s -H "X-Bakerd-Sim-Token: $(cat "$data/sim/sim-token")" "$endpoint/_sim/inventory" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["resources"]:
    tags = r.get("tags") or {}
    if r["status"] != "Deleted" and tags.get("bakerd:managed"):
        print("  %-14s %-26s %-13s build %s" % (r["kind"], r["id"], r["status"], tags.get("bakerd:build-id")))
'
