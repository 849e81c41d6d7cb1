#!/usr/bin/env bash
# .ci/docker-engine.sh - make sure a Docker engine answers on /var/run/docker.sock; idempotent.
#
#   bash .ci/docker-engine.sh          install docker.io from Debian's packages if dockerd is missing,
#                                      start dockerd if the socket does not answer, wait until it does
#
# No container registry is reachable and containers use the host's network only, so the daemon
# runs with no bridge (--bridge=none) and never touches the firewall (--iptables=false).
# dockerd's output goes to ${DOCKERD_LOG:-/var/log/visionpack-dockerd.log}. Needs root.
set -euo pipefail

LOG="${DOCKERD_LOG:-/var/log/visionpack-dockerd.log}"
SOCK=/var/run/docker.sock

answers() {
    # The engine's own ping endpoint over the unix socket; no docker CLI needed.
    python3 - "$SOCK" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
sys.exit(0 if data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] and data.endswith(b"OK") else 1)
EOF
}

if answers; then
    echo "docker-engine: dockerd already answers on $SOCK"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "docker-engine: must run as root to install or start dockerd" >&2
    exit 1
fi

if ! command -v dockerd >/dev/null; then
    echo "docker-engine: installing docker.io from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the package lists when they were never fetched.
    if ! compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null; then
        apt-get update -q
    fi
    apt-get install -y -q --no-install-recommends docker.io >/dev/null
fi

# A dockerd of ours that is still starting (or hung) holds the pid file; only replace a dead one.
PIDFILE=/var/run/docker.pid
if [[ -s "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "docker-engine: dockerd (pid $(cat "$PIDFILE")) is running; waiting for it to answer"
else
    rm -f "$PIDFILE"
    echo "docker-engine: starting dockerd --bridge=none --iptables=false (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    setsid dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
        </dev/null >>"$LOG" 2>&1 &
fi

for _ in $(seq 1 120); do
    if answers; then
        echo "docker-engine: dockerd answers on $SOCK"
        exit 0
    fi
    sleep 0.5
done
echo "docker-engine: dockerd did not answer within 60 s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
