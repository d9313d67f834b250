#!/usr/bin/env bash
# Install the servers the tests drive for real when they are missing: redis-server, chromium,
# and for tests/deploy/e2e a Docker engine (docker.io: dockerd and the docker CLI),
# docker-compose and debootstrap (the base image is made locally: no registry is reachable).
# CI runs as root; elsewhere, without root, say what to install instead of failing silently.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Tests need: ${missing[*]}. Install them (e.g. sudo apt-get install -y ${missing[*]}) and rerun." >&2
  exit 1
fi
echo "Installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
