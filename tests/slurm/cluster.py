"""A one-node SLURM cluster on this machine, for the tests in tests/slurm/ and for trying the slurm/
scripts by hand: munged, slurmctld and slurmd run as child processes (foreground, no systemd), with
every file (config, key, sockets, state, logs) in one temporary folder, on free ports, so nothing of
the machine's own /etc/slurm or /etc/munge is read or changed. Needs Debian's slurm-wlm and munge
(launch/setup.sh installs them).

    python3 tests/slurm/cluster.py      # starts a cluster, prints the SLURM_CONF to export, waits
                                        # for Ctrl-C, then stops it

The node offers the machine's cores (CPUs=nproc) and 90% of its memory, no GPUs, in one partition
"cpu"; TaskPlugin=task/none (no CPU binding: the scripts must not ask for it) and MPI plugins as
installed (srun --mpi=list)."""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DAEMONS = ("munged", "slurmctld", "slurmd")
BINARIES = ("sbatch", "srun", "scontrol", "squeue", "scancel", "sinfo")


def missing_binaries():
    """The SLURM/munge programs that are not installed (empty when the cluster can start)."""
    names = []
    for name in DAEMONS + BINARIES:
        if shutil.which(name) is None and not os.path.exists(f"/usr/sbin/{name}"):
            names.append(name)
    return names


def _daemon(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 2048


class Cluster:
    """start() brings the cluster up (a few seconds), stop() ends the daemons and removes the folder.
    env: the environment for sbatch/srun/... (SLURM_CONF set); log(name) reads a daemon's log."""

    def __init__(self, cpus=None, keep=False):
        self.cpus = cpus or os.cpu_count() or 1
        self.keep = keep
        self.dir = None
        self.processes = {}
        self.env = None
        self.node = socket.gethostname().split(".")[0]

    def start(self, timeout=60):
        started = time.monotonic()
        # A short path: unix socket names are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="lnfree-slurm-", dir="/tmp")
        d = self.dir
        for sub in ("state", "spool", "munge", "tmp"):
            os.makedirs(os.path.join(d, sub), mode=0o700)
        key = os.path.join(d, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = os.path.join(d, "munge", "munge.socket")
        ctld_port, slurmd_port = _free_port(), _free_port()
        conf = os.path.join(d, "slurm.conf")
        memory = max(512, int(_memory_mb() * 0.9))
        with open(conf, "w") as f:
            f.write(f"""# One-node test cluster (tests/slurm/cluster.py)
ClusterName=lnfree-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser={_user()}
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_min_interval=100000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=3600
# Own job ids and temporary folder: two clusters on one machine (a test run beside a hand-started
# one) would otherwise share PMIx's per-step folders (TmpFS/spmix_appdir_<uid>_<job>.<step>) and
# fail each other's step launches.
FirstJobId={random.randint(1, 900) * 1000}
TmpFS={d}/tmp
MessageTimeout=20
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self.conf = conf
        self.env = {**os.environ, "SLURM_CONF": conf}
        self._spawn("munged", [_daemon("munged"), "--foreground", "--force", f"--key-file={key}",
                               f"--socket={self.munge_socket}", f"--pid-file={d}/munge/munged.pid",
                               f"--log-file={d}/munged.log", f"--seed-file={d}/munge/munged.seed"])
        self._wait(lambda: os.path.exists(self.munge_socket), "munged socket", started + timeout)
        # -i: ignore state from a previous run (there is none; it keeps start-up quick), -D foreground.
        self._spawn("slurmctld", [_daemon("slurmctld"), "-D", "-i", "-f", conf])
        self._wait(lambda: self._run("scontrol", "ping").returncode == 0 and "UP" in self._run("scontrol", "ping").stdout,
                   "slurmctld", started + timeout)
        self._spawn("slurmd", [_daemon("slurmd"), "-D", "-f", conf, "-N", self.node])
        self._wait(self._node_idle, f"node {self.node} idle", started + timeout)
        self.start_seconds = time.monotonic() - started
        return self

    def _spawn(self, name, command):
        log = open(os.path.join(self.dir, f"{name}.stdout"), "w")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)

    def _run(self, *command, timeout=30):
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)

    def _node_idle(self):
        state = self._run("sinfo", "-h", "-N", "-o", "%T").stdout.strip()
        return state.startswith("idle")

    def _wait(self, ready, what, deadline):
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}) while starting {what}:\n"
                                       + self.log(name))
            try:
                if ready():
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"test cluster: {what} not ready in time; logs in {self.dir}:\n" + self.logs())

    def log(self, name):
        text = ""
        for suffix in (".log", ".stdout"):
            path = os.path.join(self.dir, name + suffix)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f.read()[-4000:]
        return text

    def logs(self):
        return "\n".join(f"--- {name}\n{self.log(name)}" for name in DAEMONS)

    def stop(self):
        # slurmd first (it ends running job steps), then the controller, then munge.
        for name in reversed(DAEMONS):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def _user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


if __name__ == "__main__":
    missing = missing_binaries()
    if missing:
        sys.exit(f"cluster.py: not installed: {' '.join(missing)} (Debian: apt-get install slurm-wlm munge)")
    cluster = Cluster(keep="--keep" in sys.argv).start()
    print(f"cluster up in {cluster.start_seconds:.1f}s, files in {cluster.dir}")
    print(f"export SLURM_CONF={cluster.conf}", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
