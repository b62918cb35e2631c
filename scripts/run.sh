#!/usr/bin/env bash
# Basalt's main job: installs what is needed, builds, and runs a local cluster on loopback
# (slapd with demo users, two basalt-store shards with demo mail, basalt-proxy in front) until
# Ctrl-C. Pass --shards dovecot to run Dovecot shards instead.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
exec /usr/bin/python3 tools/cluster/basalt_cluster.py up --workdir "${BASALT_CLUSTER_DIR:-$PWD/.cluster}" \
  --proxy-binary "$PWD/build/proxy/basalt-proxy" --store-binary "$PWD/build/backend/basalt-store" "$@"
