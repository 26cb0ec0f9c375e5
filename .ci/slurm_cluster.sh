#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests of the Slurm launcher:
#   .ci/slurm_cluster.sh start DIR    munged, slurmctld and slurmd with everything under DIR
#   .ci/slurm_cluster.sh stop DIR     cancel its jobs, stop the daemons (and any job step left)
#   .ci/slurm_cluster.sh status DIR   exit 0 when its controller answers
# It installs nothing: munge and Slurm's daemons and commands must be on the machine
# (Debian: apt-get install slurmctld slurmd slurm-client munge). The node has this machine's
# CPUs (each shared by up to 4 jobs) and 90 % of its memory, no GPUs; one partition, `seg101`
# (the default). Commands reach the cluster through `SLURM_CONF=DIR/slurm.conf`, written to
# DIR/env.sh by `start`.
# Environment: SEG101_SLURM_PORT, first port tried for slurmctld (default 16817; slurmd takes
# the next free one); SEG101_SLURM_PARTITION, partition name (default seg101).
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
action=$1
dir=$2
case $action in
start | stop | status) ;;
*)
    echo "error: action '$action' is not one of start, stop, status" >&2
    usage
    ;;
esac

fail() {
    echo "error: $*" >&2
    exit 1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() { # the first port from $1 on that nothing listens on
    local port=$1
    while port_busy "$port"; do
        port=$((port + 1))
        [ "$port" -lt $(($1 + 200)) ] || fail "no free port in $1-$port"
    done
    echo "$port"
}

ping_controller() { SLURM_CONF="$dir/slurm.conf" scontrol ping 2>/dev/null | grep -q UP; }

node_idle() {
    SLURM_CONF="$dir/slurm.conf" sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

daemons() { # pids of this cluster's daemons $@ (slurmctld, slurmd, munged), by command line
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
        for name in "$@"; do
            case $cmd in
            "$name -f $dir/slurm.conf"* | "$name "*"--socket=$dir/munge/munge.socket"*)
                echo "${p#/proc/}" ;;
            esac
        done
    done
    return 0
}

alive() { # those of the pids $@ that still run (a zombie has ended)
    local p state
    for p in "$@"; do
        state=$({ awk '{print $3}' "/proc/$p/stat"; } 2>/dev/null) || continue
        [ "$state" = Z ] || echo "$p"
    done
    return 0
}

stop_daemons() { # SIGTERM the daemons $@, SIGKILL what is left of them after 10 s
    local pids
    pids=$(daemons "$@")
    [ -n "$pids" ] || return 0
    kill $pids 2>/dev/null || true
    for _ in $(seq 100); do
        [ -n "$(alive $pids)" ] || return 0
        sleep 0.1
    done
    pids=$(alive $pids)
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
}

cluster_steps() { # pids of slurmstepd processes of this cluster (they carry its SLURM_CONF)
    local p
    for p in /proc/[0-9]*; do
        [[ $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) == slurmstepd:* ]] || continue
        { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$dir/slurm.conf" &&
            echo "${p#/proc/}"
    done
    return 0
}

if [ "$action" = status ]; then
    [ -f "$dir/slurm.conf" ] && ping_controller
    exit
fi

if [ "$action" = stop ]; then
    [ -d "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd)
    if ping_controller; then
        # jobs first, so that no job step outlives its slurmd
        SLURM_CONF="$dir/slurm.conf" scancel --full --partition="$(cat "$dir/partition")" \
            2>/dev/null || true
        for _ in $(seq 100); do
            [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    stop_daemons slurmd slurmctld
    steps=$(cluster_steps)
    [ -z "$steps" ] || kill -9 $steps 2>/dev/null || true
    stop_daemons munged
    exit 0
fi

for cmd in munged mungekey slurmctld slurmd scontrol sinfo sbatch srun squeue scancel; do
    command -v "$cmd" >/dev/null || fail "$cmd not found; install Slurm and munge (Debian:" \
        "apt-get install slurmctld slurmd slurm-client munge)"
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -f "$dir/slurm.conf" ] && ping_controller; then
    fail "a cluster already runs from $dir; stop it first ($0 stop $dir)"
fi
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir" "$dir/munge"

user=$(id -un)
host=$(hostname -s)
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
partition=${SEG101_SLURM_PARTITION:-seg101}
ctld_port=$(free_port "${SEG101_SLURM_PORT:-16817}")
slurmd_port=$(free_port $((ctld_port + 1)))
echo "$partition" >"$dir/partition"

[ -s "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key" ||
    fail "mungekey could not write $dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"

cat >"$dir/slurm.conf" <<EOF
# single-node test cluster written by .ci/slurm_cluster.sh
ClusterName=seg101test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# no cgroups: the cluster also runs in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
# finished jobs stay visible to squeue for 300 s (Slurm's default: the module's time-limited
# job is looked at after the other tests); a job over its limit gets 2 s after SIGTERM
MinJobAge=300
KillWait=2
OverTimeLimit=0
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=seg101-node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
# the test jobs mostly wait: up to 4 share a CPU
PartitionName=$partition Nodes=seg101-node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env.sh"
export SLURM_CONF="$dir/slurm.conf"

log_tail() { tail -n 5 "$1" 2>/dev/null | tr '\n' ' '; }

munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" ||
    fail "munged did not start: $(log_tail "$dir/log/munged.log")"
slurmctld -f "$dir/slurm.conf" || fail "slurmctld did not start: $(log_tail "$dir/log/slurmctld.log")"
for _ in $(seq 100); do
    ping_controller && break
    sleep 0.1
done
ping_controller || fail "slurmctld does not answer: $(log_tail "$dir/log/slurmctld.log")"
slurmd -f "$dir/slurm.conf" -N seg101-node || fail "slurmd did not start: $(log_tail "$dir/log/slurmd.log")"
for _ in $(seq 150); do
    node_idle && break
    sleep 0.1
done
node_idle || fail "node seg101-node did not come up: $(SLURM_CONF="$dir/slurm.conf" sinfo -h -N \
    -o '%T %E' 2>&1); slurmd: $(log_tail "$dir/log/slurmd.log")"
echo "slurm cluster up: partition $partition, $cpus CPUs, ${mem_mb} MB, SLURM_CONF=$dir/slurm.conf"
