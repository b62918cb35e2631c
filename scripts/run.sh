#!/usr/bin/env bash
# Basalt's main job: installs what is needed, builds, and runs a local cluster on loopback
# (slapd with demo users, two shards with demo mail, basalt-proxy in front) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
exec /usr/bin/python3 tools/cluster/basalt_cluster.py up --workdir "${BASALT_CLUSTER_DIR:-$PWD/.cluster}" \
  --proxy-binary "$PWD/build/proxy/basalt-proxy" "$@"
