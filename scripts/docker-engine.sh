#!/usr/bin/env bash
# Start (or find) a private Docker engine for the deployment tests and print its DOCKER_HOST.
#
#   scripts/docker-engine.sh start   # prints unix://$DIR/docker.sock once the engine answers
#   scripts/docker-engine.sh stop    # stops the engine this script started
#
# DIR is $OVERNIGHT_DOCKER_DIR (default /var/tmp/overnight-docker). The engine keeps its
# images there (--data-root), so the base and built images survive between runs on the same
# machine. Needs root and dockerd (apt-get install docker.io).
set -euo pipefail
DIR=${OVERNIGHT_DOCKER_DIR:-/var/tmp/overnight-docker}
SOCK="$DIR/docker.sock"
HOST="unix://$SOCK"
DOCKER=${DOCKER:-docker}

answers() { DOCKER_HOST="$HOST" "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    if answers; then echo "$HOST"; exit 0; fi
    command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install -y docker.io" >&2; exit 1; }
    [ "$(id -u)" -eq 0 ] || { echo "dockerd needs root" >&2; exit 1; }
    mkdir -p "$DIR/root" "$DIR/exec"
    # A stale pid file from a killed engine would stop a new one from starting.
    if [ -f "$DIR/pid" ] && ! kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then rm -f "$DIR/pid" "$SOCK"; fi
    nohup dockerd --data-root "$DIR/root" --exec-root "$DIR/exec" -H "$HOST" \
      --pidfile "$DIR/pid" >>"$DIR/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do
      if answers; then echo "$HOST"; exit 0; fi
      sleep 0.5
    done
    echo "dockerd did not answer on $SOCK within 60 s; last lines of $DIR/dockerd.log:" >&2
    tail -20 "$DIR/dockerd.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$DIR/pid" ]; then
      pid=$(cat "$DIR/pid"); kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
      echo "dockerd $pid still running after 30 s" >&2; exit 1
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
