#!/usr/bin/env python3
"""Client integration tests: docker, podman and ctr drive husk, and runc for reference.

Every check runs through each client twice, with runc and with husk as the runtime, and looks at
the effect on the host or in the container (cgroup files, files in a bind mount, what the
container prints), not only at the client's exit code. A check that fails with runc too is a
limit of the client or of this machine, and is reported as skipped for husk with the reason.

Needs the daemons and images of clients/setup.sh. Usage (as root):

    clients/run.py                       # everything; writes clients/RESULTS.md
    clients/run.py --clients docker --checks pause,oom --runtimes husk --trace

--trace runs husk through the logging shim that setup.sh installed, and keeps the command lines
the clients used per check. Without it, a check that fails with husk only is run once more
through the shim to capture them for the report.

The husk under test is --husk (default $HUSK_BINARY, else the release build of this tree),
copied to /var/lib/husk-clients/husk/husk where the clients find it; $HUSK_DESCRIBE, if set, is
added to its line in the report (e.g. "HEAD abc1234").

Exit status: 0 when no check fails with husk that passes with runc, 1 otherwise, 2 on a
harness error (daemons not running, images missing, a husk that cannot print --version).
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_HUSK = os.path.join(REPO, "target/x86_64-unknown-linux-gnu/release/husk")
WORK = "/var/lib/husk-clients"
LOGS = "/var/log/husk-clients"
UNDER_TEST = os.path.join(WORK, "husk/husk")  # a copy of the husk under test (see setup.sh)
TRACE_SHIM = os.path.join(WORK, "trace/husk")
TRACE_LOG = os.path.join(LOGS, "husk-trace.log")
CONTAINERD_SOCK = "/run/containerd/containerd.sock"
CTR_NS = "husk-clients"
DOCKER_IMAGE = "husk-busybox:latest"
PODMAN_IMAGE = "localhost/husk-busybox:latest"
CTR_IMAGE = "docker.io/library/husk-busybox:latest"
PREFIX = "hc-"  # every container this runner makes is named hc-<check>-<runtime>-<random>


# --- results ----------------------------------------------------------------------------------


class Fail(Exception):
    """The check saw a wrong effect."""


class NotApplicable(Exception):
    """The client has no such feature."""


class Res:
    def __init__(self, args, rc, out, err, secs):
        self.args, self.rc, self.out, self.err, self.secs = args, rc, out, err, secs

    def brief(self):
        lines = [l.strip() for l in (self.err.strip() or self.out.strip()).splitlines() if l.strip()]
        text = " | ".join(lines[-6:])
        if len(text) > 700:
            text = "…" + text[-700:]
        return f"`{shlex.join(self.args)}` exited {self.rc}: {text}"


def sh(args, timeout=60, check=True, input=None, env=None):
    """Runs a command; raises Fail on timeout or (with check) non-zero exit."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            args,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise Fail(f"`{shlex.join(args)}` did not finish within {timeout}s")
    r = Res(args, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    if check and r.rc != 0:
        raise Fail(r.brief())
    return r


def poll(what, fn, timeout=20, interval=0.1):
    """Calls fn until it returns a true value; raises Fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Fail as e:
            last = e
        if time.monotonic() > deadline:
            raise Fail(f"timed out after {timeout}s waiting for {what}" + (f" ({last})" if last else ""))
        time.sleep(interval)


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


# --- cgroups of a host process (v1, hybrid or v2) -----------------------------------------------


def cgroup_mounts():
    """controller (or "" for the unified hierarchy) -> mount point."""
    mounts = {}
    for line in open("/proc/self/mountinfo"):
        left, right = line.split(" - ", 1)
        fstype, _src, opts = right.split()[:3]
        mnt = left.split()[4]
        if fstype == "cgroup2":
            mounts.setdefault("", mnt)
        elif fstype == "cgroup":
            for o in opts.split(","):
                if o in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"):
                    mounts.setdefault(o, mnt)
    return mounts


MOUNTS = cgroup_mounts()


def cgroup_dir(pid, controller):
    """The cgroup directory of pid for a v1 controller, else its unified-hierarchy directory."""
    text = read(f"/proc/{pid}/cgroup")
    if text is None:
        raise Fail(f"process {pid} is gone")
    unified = None
    for line in text.splitlines():
        _hid, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(",") and controller in MOUNTS:
            return os.path.join(MOUNTS[controller], path.lstrip("/"))
        if ctrls == "":
            unified = path
    if unified is not None and "" in MOUNTS:
        return os.path.join(MOUNTS[""], unified.lstrip("/"))
    raise Fail(f"no {controller} cgroup for pid {pid}")


def cg_file(pid, controller, v1_name, v2_name):
    d = cgroup_dir(pid, controller)
    for name in (v1_name, v2_name):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise Fail(f"neither {v1_name} nor {v2_name} in {d}")


def cg_read(pid, controller, v1_name, v2_name):
    p = cg_file(pid, controller, v1_name, v2_name)
    v = read(p)
    if v is None:
        raise Fail(f"cannot read {p}")
    return p, v.strip()


def frozen(pid):
    """Whether a freezer holds pid's cgroup: the v1 freezer, or the cgroup2 freezer (on a hybrid
    host that is the cgroup2 hierarchy next to the v1 controllers). -> (frozen, where)."""
    text = read(f"/proc/{pid}/cgroup")
    if text is None:
        raise Fail(f"process {pid} is gone")
    seen = []
    for line in text.splitlines():
        _hid, ctrls, path = line.split(":", 2)
        if "freezer" in ctrls.split(",") and "freezer" in MOUNTS:
            d = os.path.join(MOUNTS["freezer"], path.lstrip("/"))
            st = (read(os.path.join(d, "freezer.state")) or "?").strip()
            seen.append((st == "FROZEN", f"{d}/freezer.state={st}"))
        if ctrls == "" and "" in MOUNTS:
            d = os.path.join(MOUNTS[""], path.lstrip("/"))
            ev = dict(l.split() for l in (read(os.path.join(d, "cgroup.events")) or "").splitlines() if " " in l)
            seen.append((ev.get("frozen") == "1", f"{d}/cgroup.events frozen={ev.get('frozen', '?')}"))
    if not seen:
        raise Fail(f"no freezer cgroup for pid {pid}")
    return any(f for f, _ in seen), ", ".join(w for _, w in seen)


def cgroup_procs(pid):
    d = cgroup_dir(pid, "pids")
    return sorted(int(x) for x in (read(os.path.join(d, "cgroup.procs")) or "").split())


def host_limits():
    """RLIMIT_NOFILE and RLIMIT_NPROC that podman can put in a spec here (see --ulimit)."""
    nofile = nproc = None
    for line in open("/proc/self/limits"):
        if line.startswith("Max open files"):
            nofile = line.split()[4]
        if line.startswith("Max processes"):
            nproc = line.split()[3]
    # podman lowers its own RLIMIT_NPROC to pid_max; conmon and the runtime inherit that.
    pid_max = int(read("/proc/sys/kernel/pid_max") or 32768)
    if nproc == "unlimited" or int(nproc) > pid_max:
        nproc = str(pid_max)
    return nofile, nproc


# --- the clients ------------------------------------------------------------------------------


class Opts(dict):
    """Options of a run: env, workdir, user, read_only, hostname, memory (bytes), pids,
    volumes [(host, ctr)], tty, init, restart ("on-failure:N"), name."""


class Client:
    name = ""
    # features the client lacks: check name -> reason
    lacks = {}

    def __init__(self, runtime, path):
        self.runtime = runtime  # "runc" | "husk" | "husk-trace"
        self.path = path  # absolute path of the runtime binary (or the trace shim)

    def versions(self):
        return {}


class DockerLike(Client):
    """docker and podman share the command line shapes."""

    image = ""

    def g(self):
        raise NotImplementedError

    def run_flags(self):
        return []

    def opt_flags(self, o):
        f = []
        for k, v in o.get("env", {}).items():
            f += ["-e", f"{k}={v}"]
        if "workdir" in o:
            f += ["-w", o["workdir"]]
        if "user" in o:
            f += ["--user", o["user"]]
        if o.get("read_only"):
            f += ["--read-only"]
        if "hostname" in o:
            f += ["--hostname", o["hostname"]]
        if "memory" in o:
            f += ["--memory", str(o["memory"])]
        if "pids" in o:
            f += ["--pids-limit", str(o["pids"])]
        for h, c in o.get("volumes", []):
            f += ["-v", f"{h}:{c}"]
        if o.get("tty"):
            f += ["-t"]
        if o.get("init"):
            f += ["--init"]
        if "restart" in o:
            f += ["--restart", o["restart"]]
        return f

    def run_args(self, name, o, cmd, detach=False, rm=False):
        a = self.g() + ["run", "--name", name] + self.run_flags()
        if detach:
            a.append("-d")
        if rm:
            a.append("--rm")
        return a + self.opt_flags(o) + [self.image] + cmd

    def run(self, name, o, cmd, timeout=60):
        """Foreground run; returns Res (rc is the container's exit code)."""
        return sh(self.run_args(name, o, cmd), timeout=timeout, check=False)

    def run_bg(self, name, o, cmd):
        sh(self.run_args(name, o, cmd, detach=True))

    def exec(self, name, cmd, timeout=30):
        return sh(self.g() + ["exec", name] + cmd, timeout=timeout, check=False)

    def inspect(self, name, fmt):
        return sh(self.g() + ["inspect", "--format", fmt, name], timeout=30).out.strip()

    def exists(self, name):
        return sh(self.g() + ["inspect", "--format", "{{.Id}}", name], timeout=30, check=False).rc == 0

    def pid(self, name):
        p = int(self.inspect(name, "{{.State.Pid}}"))
        if p <= 0:
            raise Fail(f"{name} has no running init (State.Pid={p})")
        return p

    def status(self, name):
        return self.inspect(name, "{{.State.Status}}")

    def wait(self, name, timeout=60):
        r = sh(self.g() + ["wait", name], timeout=timeout)
        return int(r.out.strip().splitlines()[-1])

    def stop(self, name, secs=10):
        sh(self.g() + ["stop", "-t", str(secs), name], timeout=secs + 30)

    def exit_code(self, name):
        return int(self.inspect(name, "{{.State.ExitCode}}"))

    def rm(self, name):
        sh(self.g() + ["rm", name], timeout=60)

    def force_rm(self, name):
        sh(self.g() + ["rm", "-f", name], timeout=60, check=False)

    def kill(self, name, sig):
        sh(self.g() + ["kill", "--signal", sig, name], timeout=30)

    def pause(self, name):
        sh(self.g() + ["pause", name], timeout=30)

    def unpause(self, name):
        sh(self.g() + ["unpause", name], timeout=30)

    def logs(self, name):
        r = sh(self.g() + ["logs", name], timeout=30)
        return r.out, r.err

    def top(self, name):
        return sh(self.g() + ["top", name], timeout=30).out

    def update_memory(self, name, nbytes):
        sh(self.g() + ["update", "--memory", str(nbytes), name], timeout=30)

    def restart_count(self, name):
        return int(self.inspect(name, "{{.RestartCount}}"))

    def oom_killed(self, name):
        return self.inspect(name, "{{.State.OOMKilled}}") == "true"


class Docker(DockerLike):
    name = "docker"
    image = DOCKER_IMAGE

    def g(self):
        return ["docker"]

    def run_flags(self):
        return ["--runtime", self.runtime]

    def stats(self, name):
        r = sh(self.g() + ["stats", "--no-stream", "--format", "{{json .}}", name], timeout=60)
        s = json.loads(r.out.strip().splitlines()[-1])
        return {"mem": s.get("MemUsage", ""), "pids": s.get("PIDs", ""), "raw": r.out.strip()}

    def versions(self):
        v = {}
        r = sh(["docker", "version", "--format", "{{json .}}"], check=False)
        try:
            j = json.loads(r.out)
            v["docker CLI"] = j["Client"]["Version"]
            v["dockerd"] = j["Server"]["Version"]
        except (ValueError, KeyError, TypeError):
            v["docker"] = r.out.strip()[:200]
        return v


class Podman(DockerLike):
    name = "podman"
    image = PODMAN_IMAGE
    nofile, nproc = host_limits()

    def g(self):
        return ["podman", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", self.path]

    def run_flags(self):
        # podman puts 1048576 into every spec for both; no runtime can raise a hard limit here
        # (the bounding set lacks CAP_SYS_RESOURCE), runc included.
        return ["--ulimit", f"nofile={self.nofile}:{self.nofile}", "--ulimit", f"nproc={self.nproc}:{self.nproc}"]

    def force_rm(self, name):
        sh(self.g() + ["rm", "-f", "-t", "0", name], timeout=60, check=False)

    def oom_killed(self, name):
        # podman 4.3 never reports OOMKilled (../shared/clients.md): exit code 137 is the signal.
        return None

    def stats(self, name):
        r = sh(self.g() + ["stats", "--no-stream", "--format", "json", name], timeout=60)
        s = json.loads(r.out)[0]
        return {"mem": s.get("mem_usage", ""), "pids": s.get("pids", ""), "raw": r.out.strip()}

    def versions(self):
        v = {}
        r = sh(["podman", "version", "--format", "{{.Client.Version}}"], check=False)
        v["podman"] = r.out.strip()
        r = sh(["conmon", "--version"], check=False)
        v["conmon"] = (r.out.strip().splitlines() or [""])[0].replace("conmon version ", "")
        return v


class Ctr(Client):
    name = "ctr"
    lacks = {
        "user": "ctr run has no --user",
        "hostname": "ctr run has no --hostname",
        "pids_limit": "ctr run has no pids limit option",
        "init": "ctr run has no --init",
        "restart": "ctr has no restart policy",
        "update_memory": "ctr has no update command",
    }

    def g(self):
        return ["ctr", "--address", CONTAINERD_SOCK, "-n", CTR_NS]

    def opt_flags(self, o, name):
        f = []
        for k, v in o.get("env", {}).items():
            f += ["--env", f"{k}={v}"]
        if "workdir" in o:
            f += ["--cwd", o["workdir"]]
        if o.get("read_only"):
            f += ["--read-only"]
        if "memory" in o:
            f += ["--memory-limit", str(o["memory"])]
        for h, c in o.get("volumes", []):
            f += ["--mount", f"type=bind,src={h},dst={c},options=rbind:rw"]
        if o.get("tty"):
            f += ["-t"]
        if o.get("logfile"):
            f += ["--log-uri", "file://" + o["logfile"]]
        for k in ("user", "hostname", "pids", "init", "restart"):
            if k in o:
                raise NotApplicable(f"ctr run has no option for {k}")
        return f

    def run_args(self, name, o, cmd, detach=False, rm=False):
        a = self.g() + ["run", "--runc-binary", self.path]
        if detach:
            a.append("-d")
        if rm:
            a.append("--rm")
        return a + self.opt_flags(o, name) + [CTR_IMAGE, name] + cmd

    def run(self, name, o, cmd, timeout=60):
        return sh(self.run_args(name, o, cmd, rm=True), timeout=timeout, check=False)

    def run_bg(self, name, o, cmd):
        sh(self.run_args(name, o, cmd, detach=True))

    def exec(self, name, cmd, timeout=30):
        eid = "e" + uuid.uuid4().hex[:8]
        return sh(self.g() + ["task", "exec", "--exec-id", eid, name] + cmd, timeout=timeout, check=False)

    def task(self, name):
        r = sh(self.g() + ["task", "ls"], timeout=30)
        for line in r.out.splitlines()[1:]:
            f = line.split()
            if f and f[0] == name:
                return int(f[1]), f[2]
        return None, None

    def exists(self, name):
        r = sh(self.g() + ["container", "ls", "-q"], timeout=30)
        return name in r.out.split()

    def pid(self, name):
        p, st = self.task(name)
        if not p:
            raise Fail(f"{name} has no task")
        return p

    def status(self, name):
        _, st = self.task(name)
        return {"RUNNING": "running", "PAUSED": "paused", "STOPPED": "exited", None: "no task"}.get(st, st)

    def wait(self, name, timeout=60):
        """Waits for the task to stop, deletes it and returns its exit code."""
        poll(f"task {name} to stop", lambda: self.task(name)[1] in ("STOPPED", None), timeout=timeout)
        r = sh(self.g() + ["task", "delete", name], timeout=30)
        m = re.search(r"exit code (\d+)", r.err)
        self._exit = int(m.group(1)) if m else 0
        return self._exit

    def stop(self, name, secs=10):
        sh(self.g() + ["task", "kill", "--signal", "SIGTERM", name], timeout=30)
        try:
            poll(f"task {name} to stop after SIGTERM", lambda: self.task(name)[1] == "STOPPED", timeout=secs)
        except Fail:
            sh(self.g() + ["task", "kill", "--signal", "SIGKILL", name], timeout=30)
        self.wait(name, timeout=30)

    def exit_code(self, name):
        return self._exit

    def rm(self, name):
        if self.task(name)[0] is not None:
            sh(self.g() + ["task", "delete", name], timeout=30)
        sh(self.g() + ["container", "delete", name], timeout=30)

    def force_rm(self, name):
        if self.task(name)[1] is not None:
            sh(self.g() + ["task", "kill", "--signal", "SIGKILL", "--all", name], timeout=30, check=False)
            sh(self.g() + ["task", "delete", "--force", name], timeout=30, check=False)
        sh(self.g() + ["container", "delete", name], timeout=30, check=False)

    def kill(self, name, sig):
        sh(self.g() + ["task", "kill", "--signal", "SIG" + sig, name], timeout=30)

    def pause(self, name):
        sh(self.g() + ["task", "pause", name], timeout=30)

    def unpause(self, name):
        sh(self.g() + ["task", "resume", name], timeout=30)

    def top(self, name):
        return sh(self.g() + ["task", "ps", name], timeout=30).out

    def stats(self, name):
        r = sh(self.g() + ["task", "metrics", "--format", "json", name], timeout=30)
        j = json.loads(r.out)
        mem = (j.get("memory") or {}).get("usage", {}).get("usage") or (j.get("memory") or {}).get("usage")
        return {"mem": str(mem), "pids": str((j.get("pids") or {}).get("current", "")), "raw": r.out[:300]}

    def oom_killed(self, name):
        return None

    def versions(self):
        r = sh(["ctr", "--address", CONTAINERD_SOCK, "version"], check=False)
        v = {}
        m = re.findall(r"Version:\s+(\S+)", r.out)
        if m:
            v["ctr"] = m[0]
            if len(m) > 1:
                v["containerd"] = m[1]
        return v


CLIENTS = {"docker": Docker, "podman": Podman, "ctr": Ctr}


# --- the checks -------------------------------------------------------------------------------


class Ctx:
    """What one check gets: the client, fresh names and a host directory, all cleaned up."""

    def __init__(self, client, check):
        self.c = client
        self.check = check
        self.names = []
        self.dirs = []

    def name(self, suffix=""):
        n = f"{PREFIX}{self.check.replace('_', '-')}-{self.c.runtime}-{uuid.uuid4().hex[:6]}{suffix}"
        self.names.append(n)
        return n

    def hostdir(self):
        d = tempfile.mkdtemp(prefix="husk-clients-")
        os.chmod(d, 0o777)
        self.dirs.append(d)
        return d

    def cleanup(self):
        for n in self.names:
            try:
                self.c.force_rm(n)
            except Fail:
                pass
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def out_of(r):
    return r.out.replace("\r", "").strip()


def check_run_output(x):
    r = x.c.run(x.name(), Opts(), ["echo", "hello from the container"])
    expect(r.rc == 0, r.brief())
    expect(out_of(r) == "hello from the container", f"stdout was {r.out!r}: {r.brief()}")
    return "stdout came through"


def check_exit_code(x):
    r = x.c.run(x.name(), Opts(), ["sh", "-c", "exit 42"])
    expect(r.rc == 42, f"exit code {r.rc}, want 42: {r.brief()}")
    return "exit 42 propagated"


LOOP_TERM = 'trap "echo term > /out/term; exit 0" TERM; echo ready > /out/ready; while :; do sleep 0.1; done'


def check_lifecycle(x):
    """detached run -> exec -> stop -> rm, each with its effect."""
    c, n, d = x.c, x.name(), x.hostdir()
    c.run_bg(n, Opts(volumes=[(d, "/out")]), ["sh", "-c", LOOP_TERM])
    poll("the container to write /out/ready", lambda: os.path.exists(f"{d}/ready"))
    expect(c.status(n) == "running", f"status {c.status(n)!r}, want running")
    pid = c.pid(n)
    memcg = cgroup_dir(pid, "memory")
    r = c.exec(n, ["sh", "-c", "echo exec-ran > /out/exec; cat /proc/1/cmdline | tr '\\0' ' '"])
    expect(r.rc == 0, f"exec: {r.brief()}")
    expect(read(f"{d}/exec") == "exec-ran\n", "exec'd process did not write /out/exec")
    expect("while :" in r.out, f"exec'd process does not see the container's pid 1: {r.out!r}")
    t0 = time.monotonic()
    c.stop(n, secs=10)
    secs = time.monotonic() - t0
    expect(read(f"{d}/term") == "term\n", "SIGTERM did not reach the container's trap")
    expect(secs < 8, f"stop took {secs:.1f}s: SIGTERM ignored, killed after the timeout")
    code = c.exit_code(n)
    expect(code == 0, f"exit code after stop {code}, want 0 (the trap's)")
    expect(not os.path.exists(f"/proc/{pid}"), f"init pid {pid} still exists after stop")
    c.rm(n)
    expect(not c.exists(n), "container still listed after rm")
    poll(f"{memcg} to be removed", lambda: not os.path.exists(memcg), timeout=10)
    return f"exec ran inside, stop via SIGTERM trap in {secs:.1f}s, rm removed {memcg}"


def check_kill_signal(x):
    c, n, d = x.c, x.name(), x.hostdir()
    script = 'trap "echo usr1 > /out/sig; exit 42" USR1; echo ready > /out/ready; while :; do sleep 0.1; done'
    c.run_bg(n, Opts(volumes=[(d, "/out")]), ["sh", "-c", script])
    poll("the container to write /out/ready", lambda: os.path.exists(f"{d}/ready"))
    c.kill(n, "USR1")
    code = c.wait(n, timeout=30)
    expect(read(f"{d}/sig") == "usr1\n", "the USR1 trap did not run")
    expect(code == 42, f"exit code {code}, want 42 from the USR1 trap")
    return "USR1 trapped, exit 42"


COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /out/count.tmp; mv /out/count.tmp /out/count; sleep 0.05; done"


def check_pause(x):
    c, n, d = x.c, x.name(), x.hostdir()
    c.run_bg(n, Opts(volumes=[(d, "/out")]), ["sh", "-c", COUNTER])

    def count():
        v = read(f"{d}/count")
        return int(v) if v and v.strip().isdigit() else 0

    poll("the counter to start", lambda: count() > 3)
    pid = c.pid(n)
    c.pause(n)
    time.sleep(0.3)
    a = count()
    time.sleep(1.5)
    b = count()
    expect(a == b, f"counter advanced while paused: {a} -> {b}")
    is_frozen, where = frozen(pid)
    expect(is_frozen, f"no freezer holds the cgroup after pause: {where}")
    st = c.status(n)
    expect(st == "paused", f"status after pause {st!r}, want paused")
    c.unpause(n)
    poll("the counter to advance after unpause", lambda: count() > b + 3, timeout=10)
    is_frozen, where2 = frozen(pid)
    expect(not is_frozen, f"cgroup still frozen after unpause: {where2}")
    st = c.status(n)
    expect(st == "running", f"status after unpause {st!r}, want running")
    return f"counter stood at {a} for 1.5s ({where}); advanced after unpause"


def check_stats(x):
    c, n = x.c, x.name()
    c.run_bg(n, Opts(), ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    pid = c.pid(n)
    poll("3 processes in the container's cgroup", lambda: len(cgroup_procs(pid)) == 3)
    s = c.stats(n)
    expect(str(s["pids"]).strip() == "3", f"stats report pids {s['pids']!r}, want 3: {s['raw'][:300]}")
    mem = re.match(r"\s*([\d.]+)\s*([a-zA-Z]*)", str(s["mem"]))
    expect(mem and float(mem.group(1)) > 0, f"stats report memory usage {s['mem']!r}: {s['raw'][:300]}")
    _, usage = cg_read(pid, "memory", "memory.usage_in_bytes", "memory.current")
    return f"pids 3, memory {s['mem']} (cgroup says {usage} bytes)"


def check_logs(x):
    c, n = x.c, x.name()
    if isinstance(c, Ctr):
        # ctr has no logs command: --log-uri file:// makes the shim copy both streams into a file.
        # Read it before the task is deleted: deleting it right after the exit can cut the copy.
        logfile = os.path.join(x.hostdir(), "log")
        c.run_bg(n, Opts(logfile=logfile), ["sh", "-c", "echo to-stdout; echo to-stderr >&2"])
        try:
            poll("both streams in the log file",
                 lambda: "to-stdout" in (read(logfile) or "") and "to-stderr" in (read(logfile) or ""), timeout=10)
        except Fail:
            raise Fail(f"log file has {read(logfile)!r}")
        code = c.wait(n, timeout=30)
        expect(code == 0, f"exit code {code}")
        return "--log-uri file got both streams"
    c.run_bg(n, Opts(), ["sh", "-c", "echo to-stdout; echo to-stderr >&2"])
    code = c.wait(n, timeout=30)
    expect(code == 0, f"exit code {code}")
    out, err = c.logs(n)
    expect(out.strip() == "to-stdout", f"logs stdout {out!r}")
    expect(err.strip() == "to-stderr", f"logs stderr {err!r}")
    return "stdout and stderr kept apart"


def check_volume(x):
    c, n, d = x.c, x.name(), x.hostdir()
    with open(f"{d}/from-host", "w") as f:
        f.write("host-token-7731\n")
    r = c.run(n, Opts(volumes=[(d, "/data")]), ["sh", "-c", "cat /data/from-host; echo written-inside > /data/from-ctr"])
    expect(r.rc == 0, r.brief())
    expect("host-token-7731" in r.out, f"container did not read the host file: {r.out!r}")
    expect(read(f"{d}/from-ctr") == "written-inside\n", "the file written inside is not on the host")
    return "host->container and container->host"


def check_oom(x):
    c, n, d = x.c, x.name(), x.hostdir()
    limit = 32 << 20
    c.run_bg(n, Opts(memory=limit, volumes=[(d, "/out")]),
             ["sh", "-c", "sleep 1; echo go > /out/go; x=a; while :; do x=$x$x; done"])
    try:
        pid = c.pid(n)
        _, lim = cg_read(pid, "memory", "memory.limit_in_bytes", "memory.max")
        seen = f"cgroup limit {lim}"
        expect(int(lim) == limit, f"memory limit in the cgroup {lim}, want {limit}")
    except Fail as e:
        if "no task" in str(e) or "gone" in str(e) or "no running init" in str(e):
            seen = "exited before the cgroup could be read"
        else:
            raise
    code = c.wait(n, timeout=60)
    expect(os.path.exists(f"{d}/go"), "the container never started its allocation")
    expect(code == 137, f"exit code {code}, want 137 (SIGKILL by the OOM killer)")
    oom = c.oom_killed(n)
    expect(oom in (True, None), "exit 137 but the client says not OOMKilled")
    return f"{seen}, exit 137" + (", OOMKilled=true" if oom else "")


def check_pids_limit(x):
    c, n, d = x.c, x.name(), x.hostdir()
    inner = 'i=0; while [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done; echo completed > /out/loop'
    script = f"sh -c '{inner}' 2>/out/err || echo stopped >> /out/loop; exec sleep 1000"
    c.run_bg(n, Opts(pids=20, volumes=[(d, "/out")]), ["sh", "-c", script])
    text = poll("the fork loop to end", lambda: read(f"{d}/loop"), timeout=30)
    pid = c.pid(n)
    _, mx = cg_read(pid, "pids", "pids.max", "pids.max")
    procs = cgroup_procs(pid)
    expect(mx == "20", f"pids.max {mx}, want 20")
    expect("stopped" in text, f"the fork loop was not stopped: {text.strip()!r}, {len(procs)} processes")
    expect(len(procs) <= 20, f"{len(procs)} processes in the cgroup, limit 20")
    err = (read(f"{d}/err") or "").strip().splitlines()
    return f"fork failed at {len(procs)} processes ({err[-1] if err else ''})"


def check_env(x):
    r = x.c.run(x.name(), Opts(env={"HUSK_TEST": "a value with spaces"}), ["sh", "-c", 'echo "$HUSK_TEST|$PATH"'])
    expect(r.rc == 0, r.brief())
    val, _, path = out_of(r).partition("|")
    expect(val == "a value with spaces", f"HUSK_TEST={val!r}")
    expect("/bin" in path, f"PATH={path!r}")
    return "variable and PATH set"


def check_workdir(x):
    # A directory the image lacks: docker makes it, the runtime makes it under ctr; podman refuses
    # one that does not exist ("workdir does not exist on container"), so it gets one that does.
    wd = "/var/tmp" if isinstance(x.c, Podman) else "/husk/wd"
    r = x.c.run(x.name(), Opts(workdir=wd), ["pwd"])
    expect(r.rc == 0, r.brief())
    expect(out_of(r) == wd, f"pwd {r.out!r}")
    return f"cwd {wd}"


def check_user(x):
    r = x.c.run(x.name(), Opts(user="1000:1000"), ["sh", "-c", "id -u; id -g; id -G; touch /tmp/f; stat -c %u:%g /tmp/f"])
    expect(r.rc == 0, r.brief())
    got = out_of(r).split()
    expect(got == ["1000", "1000", "1000", "1000:1000"], f"uid, gid, groups, file owner: {got}")
    return "uid 1000 gid 1000, no extra groups, files owned 1000:1000"


def check_read_only(x):
    script = 'touch /probe 2>/dev/null && echo writable || echo readonly; awk \'$2 == "/" {print $4}\' /proc/mounts'
    r = x.c.run(x.name(), Opts(read_only=True), ["sh", "-c", script])
    expect(r.rc == 0, r.brief())
    lines = out_of(r).splitlines()
    expect(lines and lines[0] == "readonly", f"/ is writable: {r.out!r}")
    expect(any(l.split(",")[0] == "ro" for l in lines[1:]), f"/ not mounted ro: {lines[1:]}")
    return "write to / refused, mounted ro"


def check_hostname(x):
    r = x.c.run(x.name(), Opts(hostname="husk-test-host"), ["hostname"])
    expect(r.rc == 0, r.brief())
    expect(out_of(r) == "husk-test-host", f"hostname {r.out!r}")
    return "husk-test-host"


def check_tty(x):
    c = x.c
    args = c.run_args(x.name(), Opts(tty=True), ["sh", "-c", "tty; test -t 1 && echo stdout-is-tty; exit 3"], rm=True)
    r = sh(["script", "-qec", shlex.join(args), "/dev/null"], timeout=60, check=False)
    out = r.out.replace("\r", "")
    expect(re.search(r"/dev/pts/\d+$", out, re.M), f"tty printed {out!r}: {r.brief()}")
    expect("stdout-is-tty" in out, f"stdout is not a tty: {out!r}")
    expect(r.rc == 3, f"exit code {r.rc} through the tty, want 3: {r.brief()}")
    return "process on /dev/pts, exit 3"


def check_init(x):
    r = x.c.run(x.name(), Opts(init=True), ["sh", "-c", "echo $$; cat /proc/1/comm"])
    expect(r.rc == 0, r.brief())
    lines = out_of(r).splitlines()
    expect(len(lines) == 2 and lines[0] != "1", f"the command is pid 1: {lines}")
    expect(lines[1] in ("docker-init", "tini", "catatonit", "podman-init"), f"pid 1 is {lines[1]!r}")
    return f"pid 1 is {lines[1]}, command is pid {lines[0]}"


def check_restart(x):
    c, n, d = x.c, x.name(), x.hostdir()
    c.run_bg(n, Opts(restart="on-failure:2", volumes=[(d, "/out")]), ["sh", "-c", "echo run >> /out/runs; exit 3"])

    def done():
        runs = (read(f"{d}/runs") or "").count("run")
        return runs >= 3 and c.restart_count(n) == 2 and c.status(n) == "exited"

    poll("two restarts", done, timeout=60, interval=0.5)
    time.sleep(2)  # no third restart
    runs = (read(f"{d}/runs") or "").count("run")
    expect(runs == 3, f"the container ran {runs} times, want 3")
    expect(c.restart_count(n) == 2, f"RestartCount {c.restart_count(n)}")
    return "ran 3 times, RestartCount 2"


def check_update_memory(x):
    c, n = x.c, x.name()
    c.run_bg(n, Opts(memory=128 << 20), ["sleep", "1000"])
    pid = c.pid(n)
    p, before = cg_read(pid, "memory", "memory.limit_in_bytes", "memory.max")
    expect(int(before) == 128 << 20, f"{p}={before} before the update, want {128 << 20}")
    c.update_memory(n, 64 << 20)
    _, after = cg_read(pid, "memory", "memory.limit_in_bytes", "memory.max")
    expect(int(after) == 64 << 20, f"{p}={after} after update, want {64 << 20}")
    expect(c.status(n) == "running", "container not running after update")
    return f"{p}: {before} -> {after}"


def check_top(x):
    c, n = x.c, x.name()
    c.run_bg(n, Opts(), ["sh", "-c", "sleep 1001 & sleep 1002 & wait"])
    pid = c.pid(n)
    procs = poll("3 processes in the cgroup", lambda: (lambda p: p if len(p) == 3 else None)(cgroup_procs(pid)))
    out = c.top(n)
    lines = out.strip().splitlines()
    if isinstance(c, Ctr):
        listed = sorted(int(l.split()[0]) for l in lines[1:] if l.split() and l.split()[0].isdigit())
        expect(listed == procs, f"task ps lists {listed}, cgroup has {procs}")
        return f"pids {listed} match the cgroup"
    expect("sleep 1001" in out and "sleep 1002" in out, f"top does not show the processes: {out!r}")
    if isinstance(c, Docker):
        hdr = lines[0].split()
        i = hdr.index("PID")
        listed = sorted(int(l.split()[i]) for l in lines[1:])
        expect(listed == procs, f"top lists {listed}, cgroup has {procs}")
    return f"{len(lines) - 1} processes listed"


CHECKS = [
    ("run_output", "run with output", check_run_output),
    ("exit_code", "exit code propagation", check_exit_code),
    ("lifecycle", "detached run, exec, stop, rm", check_lifecycle),
    ("kill_signal", "kill with USR1 (trapped, exit 42)", check_kill_signal),
    ("pause", "pause/unpause freezes the processes", check_pause),
    ("stats", "stats (pids, memory)", check_stats),
    ("logs", "logs (stdout/stderr)", check_logs),
    ("volume", "bind-mounted volume both ways", check_volume),
    ("oom", "memory limit, OOM kill (137)", check_oom),
    ("pids_limit", "pids limit stops a fork loop", check_pids_limit),
    ("env", "env", check_env),
    ("workdir", "workdir", check_workdir),
    ("user", "user 1000:1000", check_user),
    ("read_only", "read-only rootfs", check_read_only),
    ("hostname", "hostname", check_hostname),
    ("tty", "tty run", check_tty),
    ("init", "--init", check_init),
    ("restart", "restart on-failure:2", check_restart),
    ("update_memory", "update --memory (cgroup file)", check_update_memory),
    ("top", "top/ps", check_top),
]


def run_check(client, check, fn):
    """-> (status, detail): status is pass | fail | n/a."""
    if check in client.lacks:
        return "n/a", client.lacks[check]
    x = Ctx(client, check)
    try:
        return "pass", fn(x)
    except NotApplicable as e:
        return "n/a", str(e)
    except Fail as e:
        return "fail", str(e)
    except Exception as e:  # a harness bug must not stop the other checks
        return "fail", f"harness error: {type(e).__name__}: {e}"
    finally:
        x.cleanup()


def trace_size():
    try:
        return os.path.getsize(TRACE_LOG)
    except OSError:
        return 0


def trace_since(offset):
    try:
        with open(TRACE_LOG) as f:
            f.seek(offset)
            return [l.rstrip("\n") for l in f]
    except OSError:
        return []


# --- the report -------------------------------------------------------------------------------


def versions(husk):
    v = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    v["kernel"] = platform.release()
    v["os"] = (re.search(r'PRETTY_NAME="([^"]*)"', read("/etc/os-release") or "") or [None, "?"])[1]
    for cls in CLIENTS.values():
        try:
            v.update(cls("runc", "").versions())
        except Fail:
            pass
    r = sh([shutil.which("runc") or "runc", "--version"], check=False)
    v["runc"] = (r.out.splitlines() or [""])[0].replace("runc version ", "")
    r = sh([UNDER_TEST, "--version"], check=False)
    v["husk"] = (r.out.strip().splitlines() or ["?"])[0]
    if os.environ.get("HUSK_DESCRIBE"):
        v["husk"] += f" [{os.environ['HUSK_DESCRIBE']}]"
    r = sh(["sha256sum", UNDER_TEST], check=False)
    v["husk"] += f", {husk} sha256 {r.out[:12]}"
    if os.path.realpath(husk).startswith(REPO + "/"):
        r = sh(["git", "-C", REPO, "describe", "--always", "--dirty"], check=False)
        if r.rc == 0:
            v["husk"] += f" (built from the tree at git {r.out.strip()})"
    cg = "hybrid (v1 controllers + cgroup2)" if "" in MOUNTS and "memory" in MOUNTS else ("v2" if "" in MOUNTS else "v1")
    v["cgroups"] = cg
    return v


def cell(status, detail):
    return {"pass": "pass", "fail": "**FAIL**", "n/a": "n/a", "skip": "skip", "-": "-"}[status]


def md_escape(s):
    return s.replace("|", "\\|").replace("\n", " ")


def error_signature(detail):
    """The error of a failure without the client's command line, ids, names and paths."""
    m = re.search(r"` exited -?\d+: (.*)", detail)
    text = m.group(1) if m else detail
    text = re.sub(r"[0-9a-f]{12,64}", "<id>", text)
    text = re.sub(r"hc-[\w-]+", "<name>", text)
    text = re.sub(r"/tmp/husk-clients-\w+", "<dir>", text)
    return text


def write_results(path, vers, results, clients, checks, summary, failures):
    lines = ["# Client integration results: husk vs runc", ""]
    lines.append("Written by `clients/run.py` (`scripts/test-clients.sh`). Each check runs through the client with runc,")
    lines.append("then with husk, and looks at the effect on the host or in the container. A husk failure counts only")
    lines.append("when the same check passes with runc; a check failing with runc too is skipped for husk.")
    lines.append("")
    lines += ["| | |", "|---|---|"] + [f"| {k} | {md_escape(str(val))} |" for k, val in vers.items()]
    lines += ["", f"**husk: {summary}**", ""]
    for cl in clients:
        lines += [f"## {cl}", "", "| check | runc | husk | notes |", "|---|---|---|---|"]
        for key, title, _ in checks:
            rr = results.get((cl, key, "runc"), ("-", ""))
            hr = results.get((cl, key, "husk"), ("-", ""))
            h = hr[0]

            def short(detail):
                t = error_signature(detail)
                return t if len(t) <= 300 else t[:300] + "…"

            note = ""
            if rr[0] == "n/a":
                note = rr[1]
            elif h == "fail" and rr[0] == "fail":
                h, note = "skip", f"fails with runc too: {short(rr[1])}"
            elif h == "fail":
                note = short(hr[1])
            elif rr[0] == "fail":
                note = f"runc: {short(rr[1])}"
            lines.append(f"| {title} | {cell(rr[0], rr[1])} | {cell(h, hr[1])} | {md_escape(note)} |")
        lines.append("")
    if failures:
        lines += ["## husk failures (pass with runc, fail with husk)", ""]
        first = {}  # the same error (ids and names aside) is shown once per client
        for cl, key, detail, trace in failures:
            sig = (cl, error_signature(detail))
            if sig in first:
                lines += [f"### {cl} / {key}", "", f"The same error as {cl} / {first[sig]}.", ""]
                continue
            first[sig] = key
            lines += [f"### {cl} / {key}", "", md_escape(detail), ""]
            if trace:
                lines += ["Runtime command lines (from the trace shim):", "", "```"] + trace[-40:] + ["```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# --- main -------------------------------------------------------------------------------------


def preflight(clients, husk):
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root")
    if not os.access(husk, os.X_OK):
        problems.append(f"{husk} is not an executable (build it: cargo build --release -p runtime-cli)")
    if "docker" in clients:
        r = sh(["docker", "image", "inspect", DOCKER_IMAGE], check=False, timeout=30)
        if r.rc != 0:
            problems.append(f"docker: {r.brief()}")
        r = sh(["docker", "info", "--format", "{{json .Runtimes}}"], check=False, timeout=30)
        if r.rc != 0 or '"husk"' not in r.out:
            problems.append("dockerd has no runtime named husk")
    if "podman" in clients:
        r = sh(Podman("runc", "runc").g() + ["image", "exists", PODMAN_IMAGE], check=False, timeout=30)
        if r.rc != 0:
            problems.append(f"podman has no {PODMAN_IMAGE}")
    if "ctr" in clients:
        r = sh(Ctr("runc", "runc").g() + ["images", "ls", "-q"], check=False, timeout=30)
        if CTR_IMAGE not in r.out.split():
            problems.append(f"containerd ({CTR_NS}) has no {CTR_IMAGE}: {r.brief()}")
    if problems:
        print("run.py: not ready (run clients/setup.sh first):\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(2)


def snapshot(husk):
    """Copies the husk under test to where the clients were told to find it (setup.sh), so that
    a rebuild of target/ during the run does not change it, and checks that it runs at all."""
    os.makedirs(os.path.dirname(UNDER_TEST), exist_ok=True)
    shutil.copy2(husk, UNDER_TEST + ".new")
    os.rename(UNDER_TEST + ".new", UNDER_TEST)
    r = sh([UNDER_TEST, "--version"], check=False, timeout=30)
    if r.rc != 0:
        print(f"run.py: {husk} is broken: `husk --version` exited {r.rc} {r.err.strip()[:200]}", file=sys.stderr)
        sys.exit(2)


def leftovers():
    """Containers of an earlier interrupted run."""
    for cmd in (["docker", "ps", "-aq", "--filter", f"name={PREFIX}"],
                Podman("runc", "runc").g() + ["ps", "-aq", "--filter", f"name={PREFIX}"]):
        r = sh(cmd, check=False, timeout=30)
        ids = r.out.split()
        if ids:
            sh(cmd[: cmd.index("ps")] + ["rm", "-f"] + ids, check=False, timeout=120)
    c = Ctr("runc", "runc")
    r = sh(c.g() + ["container", "ls", "-q"], check=False, timeout=30)
    for n in r.out.split():
        if n.startswith(PREFIX):
            c.force_rm(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--husk", default=os.environ.get("HUSK_BINARY", DEFAULT_HUSK))
    ap.add_argument("--clients", default="docker,podman,ctr")
    ap.add_argument("--checks", default="", help="comma-separated check names (default: all)")
    ap.add_argument("--runtimes", default="runc,husk")
    ap.add_argument("--trace", action="store_true", help="run husk through the logging shim")
    ap.add_argument("--no-retrace", action="store_true", help="do not rerun husk failures through the shim")
    ap.add_argument("--results", default=os.path.join(REPO, "clients/RESULTS.md"),
                    help="the markdown report to write ('' for none)")
    ap.add_argument("--list", action="store_true", help="list the checks")
    a = ap.parse_args()

    if a.list:
        for key, title, _ in CHECKS:
            print(f"{key:15} {title}")
        return 0
    husk = os.path.abspath(a.husk)
    a.results = os.path.abspath(a.results) if a.results else ""
    # The clients' helpers write files into their working directory (conmon
    # leaves an `oom` file there after an OOM kill): keep them out of the tree.
    scratch = tempfile.mkdtemp(prefix="husk-clients-cwd-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.chdir(scratch)
    clients = [c for c in a.clients.split(",") if c]
    runtimes = [r for r in a.runtimes.split(",") if r]
    checks = CHECKS
    if a.checks:
        want = a.checks.split(",")
        unknown = set(want) - {k for k, _, _ in CHECKS}
        if unknown:
            ap.error(f"unknown checks: {', '.join(sorted(unknown))} (see --list)")
        checks = [c for c in CHECKS if c[0] in want]
    for cl in clients:
        if cl not in CLIENTS:
            ap.error(f"unknown client {cl}")
    preflight(clients, husk)
    snapshot(husk)
    if a.trace and not os.access(TRACE_SHIM, os.X_OK):
        print(f"run.py: {TRACE_SHIM} missing: run clients/setup.sh", file=sys.stderr)
        return 2
    leftovers()

    runc = shutil.which("runc") or "/usr/sbin/runc"

    def make(cl, rt, trace):
        if rt == "runc":
            return CLIENTS[cl]("runc", runc)
        if trace:
            return CLIENTS[cl]("husk-trace", TRACE_SHIM)
        return CLIENTS[cl]("husk", UNDER_TEST)

    results = {}
    failures = []
    for cl in clients:
        for key, title, fn in checks:
            for rt in runtimes:
                off = trace_size()
                t0 = time.monotonic()
                st, detail = run_check(make(cl, rt, a.trace), key, fn)
                secs = time.monotonic() - t0
                results[(cl, key, rt)] = (st, detail)
                print(f"{cl:7} {key:14} {rt:5} {st:5} {secs:5.1f}s  {detail[:150]}", flush=True)
                if rt == "husk" and st == "fail" and results.get((cl, key, "runc"), ("pass",))[0] != "fail":
                    trace = trace_since(off) if a.trace else []
                    if not a.trace and not a.no_retrace and os.access(TRACE_SHIM, os.X_OK):
                        off = trace_size()
                        st2, detail2 = run_check(make(cl, rt, True), key, fn)
                        trace = trace_since(off)
                        print(f"{'':7} {'':14} {'(traced rerun)':11} {st2:5} {detail2[:150]}", flush=True)
                    failures.append((cl, key, detail, trace))

    passed = failed = skipped = 0
    for cl in clients:
        for key, _, _ in checks:
            h = results.get((cl, key, "husk"))
            if h is None:
                continue
            r = results.get((cl, key, "runc"), ("pass", ""))
            if h[0] == "n/a" or r[0] in ("fail", "n/a"):
                skipped += 1
            elif h[0] == "pass":
                passed += 1
            else:
                failed += 1
    summary = f"{passed} passed, {failed} failed, {skipped} skipped"
    if "husk" in runtimes and a.results:
        write_results(a.results, versions(husk), results, clients, checks, summary, failures)
        print(f"results: {a.results}")
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
