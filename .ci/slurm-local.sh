#!/usr/bin/env bash
# A real one-node SLURM 22.05 cluster (with slurmdbd + MariaDB accounting, preemption and two fake
# GPUs) on a Debian 12 machine without systemd, for the submitit tests and local trials.
#
#   bash .ci/slurm-local.sh install   apt-get the packages (root; exit 3 if that is impossible)
#   bash .ci/slurm-local.sh start     install if needed, write configs, start the daemons, wait
#   bash .ci/slurm-local.sh status    exit 0 when every daemon runs and sinfo answers, else 1
#   bash .ci/slurm-local.sh stop      stop exactly the daemons that start recorded
#
# Environment: SLURM_LOCAL_DIR (state, spool, logs; default /var/lib/slurm-local),
# SLURM_LOCAL_CPUS (CPUs the node advertises; default 8), SLURM_LOCAL_GPUS (fake GPUs; default 2),
# SLURM_LOCAL_GRACE_S (GraceTime of 'debug': seconds between USR2 and requeue; default 5).
# Notes and traps: .ci/slurm-local.md.
set -euo pipefail
set +m # background jobs must stay out of their own process group, so setsid execs in place

STATE_DIR=${SLURM_LOCAL_DIR:-/var/lib/slurm-local}
NODE_CPUS=${SLURM_LOCAL_CPUS:-8}
NODE_GPUS=${SLURM_LOCAL_GPUS:-2}
GRACE_S=${SLURM_LOCAL_GRACE_S:-5}
CLUSTER=slurmlocal
CONF_DIR=/etc/slurm
PID_DIR=$STATE_DIR/pids # our records: one file per daemon we started
RUN_DIR=$STATE_DIR/run  # the daemons' own pid files
LOG_DIR=$STATE_DIR/log
DB_NAME=slurm_acct_db
DB_USER=slurm
MARKER="# Written by .ci/slurm-local.sh; rewritten on every start."
PACKAGES=(munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd) # start order; stop is the reverse
WAIT_S=60
HOST=$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)

log() { printf '[slurm-local] %s\n' "$*"; }
die() {
  printf '[slurm-local] error: %s\n' "$1" >&2
  exit "${2:-1}"
}

# ---------------------------------------------------------------- processes and PID records

# Alive means: the process exists, is not a zombie (PID 1 here reaps late) and has the expected
# name, so a recycled PID is not mistaken for our daemon.
pid_alive() {
  local pid=$1 name=$2 state comm
  [[ -r /proc/$pid/status ]] || return 1
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X && $comm == "$name" ]]
}

recorded_pid() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }

daemon_running() {
  local pid
  pid=$(recorded_pid "$1")
  [[ -n $pid ]] && pid_alive "$pid" "$1"
}

# Poll a check command until it succeeds; give up early if the daemon died meanwhile.
wait_for() {
  local what=$1 name=$2 pid=$3
  shift 3
  local deadline=$((SECONDS + WAIT_S))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pid" "$name"; then
      log "$name (pid $pid) exited while waiting for: $what; last lines of its logs:"
      tail -n 8 "$LOG_DIR/$name.out" "$LOG_DIR/$name.log" 2>/dev/null || true
      die "$name failed to start"
    fi
    ((SECONDS < deadline)) || die "timed out after ${WAIT_S}s waiting for: $what (logs in $LOG_DIR)"
    sleep 0.2
  done
}

# Run a daemon in the foreground of its own session and record its PID. setsid and setpriv exec,
# so $! becomes the daemon itself: wait for that exec, or pid_alive would see "bash" or "setsid".
launch() {
  local name=$1 pid i
  shift
  setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_DIR/$name.pid"
  for ((i = 0; i < 100; i++)); do
    [[ -e /proc/$pid ]] || return 0 # gone: wait_for reports it with the logs
    [[ $(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) != Z ]] || return 0
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$name" ]] || return 0
    sleep 0.05
  done
  die "pid $pid never became $name (did setsid fork? run without job control, not bash -m)"
}

stop_daemon() {
  local name=$1 pid deadline
  pid=$(recorded_pid "$name")
  if [[ -z $pid ]]; then
    return 0
  fi
  if pid_alive "$pid" "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + WAIT_S))
    while pid_alive "$pid" "$name"; do
      if ((SECONDS >= deadline)); then
        log "$name did not exit after ${WAIT_S}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
      fi
      sleep 0.2
    done
  fi
  rm -f "$PID_DIR/$name.pid"
}

# ---------------------------------------------------------------- install

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (uid 0) to $1 a local SLURM cluster" 3
}

missing_packages() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
      echo "$pkg"
  done
}

cmd_install() {
  local missing
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs Debian/Ubuntu" 3
  need_root install
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]} == 0)); then
    log "packages already installed"
    return 0
  fi
  # Packages must not start their own services: start owns the daemons and their PIDs.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${PACKAGES[@]}" >/dev/null; then
    log "install failed; refreshing package lists and retrying"
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${PACKAGES[@]}" >/dev/null
  fi
  log "packages installed"
}

# ---------------------------------------------------------------- configuration

# Write a file only when its content changes; report whether it did (0 = changed).
write_if_changed() {
  local path=$1 mode=$2 content=$3
  if [[ -f $path ]] && [[ "$(cat "$path")" == "$content" ]]; then
    return 1
  fi
  if [[ -f $path ]] && ! grep -qF "$MARKER" "$path"; then
    cp -p "$path" "$path.before-slurm-local"
    log "kept the previous $path as $path.before-slurm-local"
  fi
  (umask 077 && printf '%s\n' "$content" >"$path.tmp")
  chmod "$mode" "$path.tmp"
  mv -f "$path.tmp" "$path"
}

real_memory_mb() {
  local mb
  mb=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
  [[ -n $mb ]] || mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  # Leave a margin (10 %, at least 512 MB) so the node is not drained for "low RealMemory".
  local margin=$((mb / 10 > 512 ? mb / 10 : 512))
  echo $((mb - margin))
}

# Character devices that behave like /dev/null stand in for GPUs, so --gres=gpu:N schedules.
gres_line() {
  local i files=fakegpu0
  ((NODE_GPUS == 1)) || files="fakegpu[0-$((NODE_GPUS - 1))]"
  mkdir -p "$STATE_DIR/dev"
  for ((i = 0; i < NODE_GPUS; i++)); do
    [[ -c $STATE_DIR/dev/fakegpu$i ]] && continue
    rm -f "$STATE_DIR/dev/fakegpu$i"
    if ! mknod "$STATE_DIR/dev/fakegpu$i" c 1 3 2>/dev/null; then
      log "mknod not permitted: fake GPUs get no device files (and no CUDA_VISIBLE_DEVICES)" >&2
      echo "NodeName=$HOST Name=gpu Count=$NODE_GPUS"
      return 0
    fi
  done
  echo "NodeName=$HOST Name=gpu File=$STATE_DIR/dev/$files"
}

db_password() {
  local f=$STATE_DIR/db.pass
  if [[ ! -s $f ]]; then
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$f")
  fi
  cat "$f"
}

write_configs() {
  local mem gres changed=()
  mem=$(real_memory_mb)
  gres=$(gres_line)
  mkdir -p "$CONF_DIR"

  write_if_changed "$CONF_DIR/slurm.conf" 644 "$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
MailProg=/bin/true
# No cgroups on this machine.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job would take all the node's memory and jobs could not share the node.
DefMemPerCPU=$((mem / NODE_CPUS))
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
# The node advertises NODE_CPUS CPUs whatever it has, so several one-CPU jobs run at once.
SlurmdParameters=config_overrides
# Jobs in 'high' requeue jobs in 'debug'; those get their --signal (USR2 for submitit) first.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
JobRequeue=1
MinJobAge=10
KillWait=5
OverTimeLimit=0
InactiveLimit=0
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$mem Gres=gpu:$NODE_GPUS State=UNKNOWN
# USR2 comes at preemption, but the requeue waits for slurmctld's periodic time-limit pass (every
# 30 s) once GraceTime ends: the preemptor starts 5-35 s later. GraceTime=0: at once, USR2 + TERM.
PartitionName=debug Nodes=$HOST Default=YES PriorityTier=1 GraceTime=$GRACE_S MaxTime=INFINITE State=UP
PartitionName=high Nodes=$HOST PriorityTier=10 MaxTime=INFINITE State=UP" && changed+=(slurm.conf)

  write_if_changed "$CONF_DIR/gres.conf" 644 "$MARKER
AutoDetect=off
$gres" && changed+=(gres.conf)

  # slurmdbd insists on mode 600 and ownership by its SlurmUser.
  write_if_changed "$CONF_DIR/slurmdbd.conf" 600 "$MARKER
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$(db_password)
StorageLoc=$DB_NAME" && changed+=(slurmdbd.conf)

  if ((${#changed[@]})); then
    log "wrote ${changed[*]} in $CONF_DIR"
    if daemon_running slurmctld || daemon_running slurmd; then
      log "warning: running daemons still use the old configuration; 'stop' then 'start'"
    fi
  fi
}

# ---------------------------------------------------------------- daemons

start_munged() {
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    (umask 077 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none)
    chown munge:munge /etc/munge/munge.key
  fi
  launch munged setpriv --reuid=munge --regid=munge --init-groups -- munged --foreground
  wait_for "munge credentials" munged "$(recorded_pid munged)" sh -c 'munge -n | unmunge'
}

# The database lives in the state dir with the controller's state: job ids restart at 1 when that
# state goes, and a database that outlived it would give sacct two jobs with one id.
start_mariadbd() {
  local datadir=$STATE_DIR/mysql
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if [[ ! -d $datadir/mysql ]]; then
    log "initialising the MariaDB data directory $datadir"
    install -d -o mysql -g mysql -m 0750 "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
      --auth-root-authentication-method=socket >>"$LOG_DIR/mariadbd.out" 2>&1
  fi
  launch mariadbd mariadbd --user=mysql --datadir="$datadir"
  wait_for "MariaDB to answer" mariadbd "$(recorded_pid mariadbd)" mariadb-admin ping
}

# Idempotent; also resets the password so it always matches slurmdbd.conf.
setup_database() {
  local pass
  pass=$(db_password)
  mariadb -u root <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
}

start_slurmdbd() {
  launch slurmdbd slurmdbd -D
  wait_for "slurmdbd to answer sacctmgr" slurmdbd "$(recorded_pid slurmdbd)" \
    timeout 10 sacctmgr -n show cluster
}

register_cluster() {
  if ! timeout 10 sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    log "registering cluster '$CLUSTER' in accounting"
    timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

ctld_up() { timeout 10 scontrol ping | grep -q 'is UP'; }

start_slurmctld() {
  launch slurmctld slurmctld -D
  wait_for "slurmctld to answer scontrol ping" slurmctld "$(recorded_pid slurmctld)" ctld_up
}

# idle, or busy with jobs (a warm start may find some); not down, drained or unresponsive (*).
node_ready() {
  local state
  state=$(timeout 10 sinfo -h -N -n "$HOST" -o '%T' | head -n 1)
  [[ $state =~ ^(idle|mixed|allocated|completing)$ ]]
}

start_slurmd() {
  launch slurmd slurmd -D
  wait_for "node $HOST to be idle in sinfo" slurmd "$(recorded_pid slurmd)" node_ready
}

sacct_answers() { timeout 10 sacct -n -X -S now-1minute; }

start_one() {
  local name=$1
  if daemon_running "$name"; then
    log "$name already running (pid $(recorded_pid "$name"))"
    return 0
  fi
  rm -f "$PID_DIR/$name.pid"
  log "starting $name"
  "start_$name"
  log "$name up (pid $(recorded_pid "$name"))"
}

print_summary() {
  local gres_note="fake GPUs: --gres=gpu:1 sets CUDA_VISIBLE_DEVICES (there is no CUDA)"
  cat <<EOF

SLURM cluster '$CLUSTER' is up on node $HOST ($NODE_CPUS CPUs advertised, gpu:$NODE_GPUS).
$(timeout 10 sinfo -o '%10P %.5a %.10l %.6D %.8t %N')

  debug  default partition, PriorityTier=1, jobs requeued (USR2 first, GraceTime $GRACE_S s) when
         'high' needs their resources; requeued jobs are held 120 s unless you run
         scontrol update JobId=<id> StartTime=now
  high   PriorityTier=10, preempts debug
  $gres_note

Submit:  sbatch --wrap 'hostname'          sbatch -p high -c 2 --wrap 'sleep 5'
Watch:   squeue; sacct -X
Logs:    $LOG_DIR
Stop:    bash $0 stop
EOF
}

cmd_start() {
  local t0=$SECONDS name
  [[ $NODE_CPUS =~ ^[1-9][0-9]*$ && $NODE_GPUS =~ ^[1-9][0-9]*$ && $GRACE_S =~ ^[0-9]+$ ]] ||
    die "SLURM_LOCAL_CPUS and SLURM_LOCAL_GPUS must be positive integers, SLURM_LOCAL_GRACE_S >= 0"
  need_root start
  [[ -z $(missing_packages) ]] || cmd_install
  mkdir -p "$PID_DIR" "$RUN_DIR" "$LOG_DIR" "$STATE_DIR/ctld" "$STATE_DIR/spool"
  write_configs
  start_one munged
  start_one mariadbd
  setup_database
  start_one slurmdbd
  register_cluster
  start_one slurmctld
  start_one slurmd
  for name in "${DAEMONS[@]}"; do
    daemon_running "$name" || die "$name is not running (logs in $LOG_DIR)"
  done
  wait_for "node $HOST to be idle in sinfo" slurmd "$(recorded_pid slurmd)" node_ready
  wait_for "sacct to answer" slurmdbd "$(recorded_pid slurmdbd)" sacct_answers
  log "cluster ready in $((SECONDS - t0)) s"
  print_summary
}

cmd_stop() {
  local i steps
  [[ -d $PID_DIR ]] || {
    log "nothing recorded; nothing to stop"
    return 0
  }
  need_root stop
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    stop_daemon "${DAEMONS[i]}"
  done
  steps=$(grep -lx slurmstepd /proc/[0-9]*/comm 2>/dev/null | wc -l || true)
  if ((steps > 0)); then
    log "note: $steps slurmstepd process(es) remain: their jobs resume on the next start"
  fi
  log "stopped"
}

cmd_status() {
  local name pid up=0
  for name in "${DAEMONS[@]}"; do
    pid=$(recorded_pid "$name")
    if daemon_running "$name"; then
      printf '  %-10s running (pid %s)\n' "$name" "$pid"
      up=$((up + 1))
    else
      printf '  %-10s stopped\n' "$name"
    fi
  done
  if ((up == ${#DAEMONS[@]})) && timeout 10 sinfo; then
    return 0
  fi
  echo "cluster is not (fully) up"
  return 1
}

main() {
  case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: bash $0 start|stop|status|install" >&2
    exit 2
    ;;
  esac
}

main "$@"
