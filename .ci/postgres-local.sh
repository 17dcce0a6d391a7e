#!/usr/bin/env bash
# A local PostgreSQL server (Debian's packages, no systemd) for the MLflow team-server test and
# local trials: one cluster of our own in a state dir, run as the postgres user, listening on
# 127.0.0.1 only (password logins, scram-sha-256) and on a Unix socket in the state dir (the
# postgres superuser, peer authentication). Debian's own cluster ("main") is left alone.
#
#   bash .ci/postgres-local.sh install       apt-get postgresql if missing (Debian's cluster not started)
#   bash .ci/postgres-local.sh start         install postgresql if missing, create the cluster if
#                                            missing, start it, wait until it answers
#   bash .ci/postgres-local.sh status        exit 0 when it runs and answers on 127.0.0.1, else 1
#   bash .ci/postgres-local.sh stop          stop it (fast: open sessions are ended)
#   bash .ci/postgres-local.sh psql ARGS...  psql as the superuser over the socket; stdin passes
#                                            through, so does the environment (psql's \getenv)
#
# Environment: POSTGRES_LOCAL_DIR (data, socket, log; default /var/lib/postgres-local),
# POSTGRES_LOCAL_PORT (TCP port on 127.0.0.1; default 55432).
# Exit status: 0 done, 1 failed (or, for status, not running), 2 usage,
# 3 cannot run here (not root, or postgresql missing and no apt-get to install it).
set -euo pipefail

STATE_DIR=${POSTGRES_LOCAL_DIR:-/var/lib/postgres-local}
PORT=${POSTGRES_LOCAL_PORT:-55432}
DATA_DIR=$STATE_DIR/data
SOCK_DIR=$STATE_DIR/run
LOG_FILE=$STATE_DIR/postgresql.log
OS_USER=postgres
WAIT_S=60

log() { printf '[postgres-local] %s\n' "$*"; }
die() {
  printf '[postgres-local] error: %s\n' "$1" >&2
  exit "${2:-1}"
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (uid 0) to $1 the local PostgreSQL server" 3
}

# The newest installed server version's binaries (initdb, pg_ctl, postgres), or nothing.
bin_dir() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
  [[ -n $d ]] && dirname "$d"
}

# As the postgres user, from a directory it may enter (it cannot enter root's cwd).
as_pg() { (cd / && runuser -u "$OS_USER" -- "$@"); }

cmd_install() {
  [[ -n $(bin_dir) ]] && id "$OS_USER" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "postgresql is not installed and apt-get was not found: this script needs Debian/Ubuntu" 3
  need_root install
  # The package must not start Debian's own cluster: this script owns the server it starts.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 postgresql >/dev/null; then
    log "install failed; refreshing package lists and retrying"
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 postgresql >/dev/null
  fi
  [[ -n $(bin_dir) ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
  log "postgresql installed"
}

# The port of the running server (line 4 of postmaster.pid), or nothing when it is not running.
running_port() {
  local bin
  bin=$(bin_dir) || return 0
  [[ -f $DATA_DIR/postmaster.pid ]] || return 0
  as_pg "$bin/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1 || return 0
  sed -n 4p "$DATA_DIR/postmaster.pid"
}

init_cluster() {
  local bin=$1
  install -d -m 0755 "$STATE_DIR"
  install -d -o "$OS_USER" -g "$OS_USER" -m 0755 "$SOCK_DIR"
  touch "$LOG_FILE" && chown "$OS_USER:$OS_USER" "$LOG_FILE" && chmod 0640 "$LOG_FILE"
  [[ -f $DATA_DIR/PG_VERSION ]] && return 0
  log "creating the cluster in $DATA_DIR"
  install -d -o "$OS_USER" -g "$OS_USER" -m 0700 "$DATA_DIR"
  as_pg "$bin/initdb" -D "$DATA_DIR" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >>"$LOG_FILE" 2>&1 ||
    die "initdb failed (log: $LOG_FILE)"
  # Only the socket (superuser, peer) and 127.0.0.1 (password) are accepted; no IPv6, no other host.
  printf '%s\n' "# Written by .ci/postgres-local.sh" \
    "local all all peer" \
    "host all all 127.0.0.1/32 scram-sha-256" >"$DATA_DIR/pg_hba.conf"
  chown "$OS_USER:$OS_USER" "$DATA_DIR/pg_hba.conf"
}

answers() { "$1/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 5; }

cmd_start() {
  local t0=$SECONDS bin port
  [[ $PORT =~ ^[1-9][0-9]*$ ]] || die "POSTGRES_LOCAL_PORT must be a port number, not '$PORT'" 2
  need_root start
  cmd_install
  bin=$(bin_dir)
  port=$(running_port)
  if [[ -n $port ]]; then
    [[ $port == "$PORT" ]] || die "already running on port $port, not $PORT: 'stop' first"
    log "already running (port $PORT, data $DATA_DIR)"
  else
    init_cluster "$bin"
    log "starting PostgreSQL $(basename "$(dirname "$bin")") on 127.0.0.1:$PORT"
    # Settings on the command line, so the data dir holds no state of ours beyond pg_hba.conf.
    as_pg "$bin/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$WAIT_S" \
      -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$SOCK_DIR" >/dev/null ||
      {
        tail -n 15 "$LOG_FILE" >&2
        die "PostgreSQL failed to start (log: $LOG_FILE)"
      }
  fi
  local deadline=$((SECONDS + WAIT_S))
  until answers "$bin"; do
    ((SECONDS < deadline)) || die "no answer on 127.0.0.1:$PORT after ${WAIT_S}s (log: $LOG_FILE)"
    sleep 0.2
  done
  log "ready in $((SECONDS - t0)) s: 127.0.0.1:$PORT (password logins); superuser: bash $0 psql"
}

cmd_stop() {
  local bin port
  need_root stop
  bin=$(bin_dir) || true
  port=$(running_port)
  if [[ -z $port ]]; then
    log "not running; nothing to stop"
    return 0
  fi
  log "stopping (port $port)"
  if ! as_pg "$bin/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t "$WAIT_S" >/dev/null; then
    log "fast shutdown timed out; immediate shutdown"
    as_pg "$bin/pg_ctl" stop -D "$DATA_DIR" -m immediate -w -t "$WAIT_S" >/dev/null
  fi
  log "stopped"
}

cmd_status() {
  local bin port
  need_root status
  bin=$(bin_dir) || {
    echo "postgresql is not installed"
    return 1
  }
  port=$(running_port)
  if [[ -n $port ]] && PORT=$port answers "$bin"; then
    echo "running on 127.0.0.1:$port (data $DATA_DIR, socket $SOCK_DIR)"
    return 0
  fi
  echo "not running${port:+ (a postmaster on port $port does not answer)}"
  return 1
}

cmd_psql() {
  local bin port
  need_root "use"
  bin=$(bin_dir) || die "postgresql is not installed"
  port=$(running_port)
  [[ -n $port ]] || die "not running: 'start' first"
  as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$port" -d postgres "$@"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  psql) cmd_psql "$@" ;;
  *)
    echo "usage: bash $0 install|start|stop|status|psql [ARGS...]" >&2
    exit 2
    ;;
  esac
}

main "$@"
