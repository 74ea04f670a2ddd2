#!/usr/bin/env python3
"""Runs the built image the way deploy/kubernetes/base/deployment.yaml runs it, with podman.

    deploy/container-check.py IMAGE SIMULATOR_HOST:PORT

Everything the pod spec says is read from the manifests, not copied by hand: the user and group,
the read-only root filesystem, dropped capabilities, no privilege escalation, the container
port, the args, the env, the probe paths and the volume paths (the ConfigMap's files mounted
read-only where the spec mounts them, the emptyDir as a podman volume). The one test-only
change: UPBIT_EXPORTER__UPBIT__URL points at the simulator on this machine (host network).

Checks, each printed: the image's user, port and state directory match the spec; the probes'
paths answer 200 (startup, liveness, then readiness once connected); /metrics counts messages;
the process runs as the spec's uid; a subscription change is persisted on the state volume and
is there again after the container is replaced; `podman stop` ends the binary (PID 1) on SIGTERM
with exit code 0 well before the grace period. Prints the figures: image size, start to ready,
stop time. Needs podman (scripts/image installs it) and PyYAML.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes" / "base"
TOKEN = "container-check-token-0123456789"
STOP_LIMIT_SECONDS = 2.0
READY_LIMIT_SECONDS = 30.0


def fail(message):
    sys.exit(f"FAIL container check: {message}")


def ok(message):
    print(f"ok   {message}")


def podman(*args, check=True, capture=True, timeout=60):
    run = subprocess.run(["podman", *args], capture_output=capture, text=True, timeout=timeout)
    if check and run.returncode != 0:
        fail(f"podman {' '.join(args)} exited {run.returncode}: {run.stderr.strip()}")
    return run


def manifest(kind, name):
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    fail(f"no {kind} {name} in {K8S}")


def http(url, method="GET", body=None, headers=None, timeout=2.0):
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError):
        return None, ""


def wait_for(what, probe, deadline_seconds):
    """Polls `probe()` until it returns a true value; fails after the deadline."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_seconds:
        value = probe()
        if value:
            return value, time.monotonic() - start
        time.sleep(0.1)
    fail(f"{what}: not within {deadline_seconds:.0f} s")


class Spec:
    """What the Deployment says about the one container, resolved against its ConfigMap."""

    def __init__(self):
        deployment = manifest("Deployment", "upbit-exporter")
        pod = deployment["spec"]["template"]["spec"]
        (self.container,) = pod["containers"]
        c = self.container
        pod_sc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
        self.uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        self.gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if self.uid in (None, 0) or not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            fail(f"the spec must run as a non-root uid (runAsUser={self.uid})")
        self.read_only = bool(sc.get("readOnlyRootFilesystem"))
        self.no_escalation = sc.get("allowPrivilegeEscalation") is False
        self.cap_drop = sc.get("capabilities", {}).get("drop", [])
        (port,) = c["ports"]
        self.port = port["containerPort"]
        self.port_name = port.get("name")
        self.args = c.get("args", [])
        self.env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
        self.secret_env = [e["name"] for e in c.get("env", []) if "valueFrom" in e]
        self.probes = {}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = c[kind]["httpGet"]
            if get["port"] not in (self.port, self.port_name):
                fail(f"{kind} probes port {get['port']}, not the container port")
            self.probes[kind] = get["path"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        self.config_mounts, self.state_mounts = [], []
        for mount in c.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                cm = manifest("ConfigMap", volume["configMap"]["name"])
                self.config_mounts.append((mount["mountPath"], cm["data"], mount.get("readOnly", False)))
            elif "emptyDir" in volume:
                self.state_mounts.append(mount["mountPath"])
            else:
                fail(f"volume {mount['name']}: only configMap and emptyDir are modelled here")
        if not self.state_mounts:
            fail("the spec mounts no emptyDir for the state file")


def check_image(image, spec):
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    config = info.get("Config", {})
    user = config.get("User", "")
    if user != f"{spec.uid}:{spec.gid}":
        fail(f"image USER is {user!r}; the spec runs as {spec.uid}:{spec.gid}")
    ports = config.get("ExposedPorts", {})
    if f"{spec.port}/tcp" not in ports:
        fail(f"image exposes {sorted(ports)}; the spec's container port is {spec.port}")
    entry = config.get("Entrypoint", [])
    if not entry or not entry[0].startswith("/"):
        fail(f"image ENTRYPOINT {entry} is not an exec-form absolute path")
    # The state directory exists in the image, owned by the spec's user (so a fresh volume is too).
    mount = podman("image", "mount", image).stdout.strip()
    try:
        for path in spec.state_mounts:
            st = os.stat(Path(mount) / path.lstrip("/"))
            if (st.st_uid, st.st_gid) != (spec.uid, spec.gid):
                fail(f"{path} in the image is owned by {st.st_uid}:{st.st_gid}, not {spec.uid}:{spec.gid}")
        files = [p for p in Path(mount).rglob("*") if p.is_file()]
    finally:
        podman("image", "unmount", image, check=False)
    size = info["Size"]
    ok(f"image {image}: USER {user}, EXPOSE {spec.port}, ENTRYPOINT {entry[0]}, "
       f"state dir owned by {spec.uid}; {len(files)} files, {size / 1e6:.1f} MB")
    return size


def run_container(image, spec, name, volume, config_dir, simulator):
    args = ["run", "-d", "--name", name, "--network=host",
            "--user", f"{spec.uid}:{spec.gid}", "--stop-timeout", "30"]
    if spec.read_only:
        args.append("--read-only")
    if spec.no_escalation:
        args += ["--security-opt", "no-new-privileges"]
    for cap in spec.cap_drop:
        args += ["--cap-drop", cap]
    for mount_path, _data, read_only in spec.config_mounts:
        args += ["-v", f"{config_dir / mount_path.strip('/').replace('/', '_')}:{mount_path}:{'ro' if read_only else 'rw'}"]
    for mount_path in spec.state_mounts:
        args += ["-v", f"{volume}:{mount_path}"]
    for key, value in spec.env.items():
        args += ["-e", f"{key}={value}"]
    # The optional Secret's token, as the pod would get it from upbit-exporter-control.
    for key in spec.secret_env:
        args += ["-e", f"{key}={TOKEN}"]
    # Test-only: the simulator on this machine instead of wss://api.upbit.com.
    args += ["-e", f"UPBIT_EXPORTER__UPBIT__URL=ws://{simulator}/websocket/v1"]
    args += [image, *spec.args]
    started = time.monotonic()
    podman(*args)
    return started


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    image, simulator = sys.argv[1], sys.argv[2]
    if shutil.which("podman") is None:
        fail("podman is not installed (scripts/image installs it)")
    # The containers.conf scripts/tools.sh writes (runc, ulimits within the hard limits): without
    # it podman's defaults fail on this kind of machine.
    conf = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "upbit-exporter" / "containers.conf"
    if "CONTAINERS_CONF" not in os.environ and conf.is_file():
        os.environ["CONTAINERS_CONF"] = str(conf)
    spec = Spec()
    size = check_image(image, spec)
    name, volume = f"upbit-check-{os.getpid()}", f"upbit-check-state-{os.getpid()}"
    base = f"http://127.0.0.1:{spec.port}"
    if http(f"{base}/healthz")[0] is not None:
        fail(f"something already answers on port {spec.port} (the spec's port); stop it first")
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        for mount_path, data, _ in spec.config_mounts:
            d = config_dir / mount_path.strip("/").replace("/", "_")
            d.mkdir(parents=True)
            for file_name, text in data.items():
                (d / file_name).write_text(text)
                (d / file_name).chmod(0o644)
            d.chmod(0o755)
        podman("volume", "create", volume)
        try:
            figures = exercise(image, spec, name, volume, config_dir, simulator, base)
        finally:
            podman("rm", "-f", "-t", "0", name, check=False)
            podman("volume", "rm", "-f", volume, check=False)
    print(f"figures: image {size / 1e6:.1f} MB; start to ready {figures['ready']:.2f} s; "
          f"podman stop {figures['stop']:.2f} s (exit code 0); restarted and ready again in "
          f"{figures['ready_again']:.2f} s with the saved subscription")


def exercise(image, spec, name, volume, config_dir, simulator, base):
    started = run_container(image, spec, name, volume, config_dir, simulator)

    def logs():
        return podman("logs", name, check=False).stderr[-3000:]

    def answers(path):
        def probe():
            status, body = http(base + path)
            if status is None and podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip() != "true":
                fail(f"the container stopped:\n{logs()}")
            return status == 200
        return probe

    wait_for(f"startupProbe {spec.probes['startupProbe']}", answers(spec.probes["startupProbe"]), READY_LIMIT_SECONDS)
    _, live = wait_for(f"livenessProbe {spec.probes['livenessProbe']}", answers(spec.probes["livenessProbe"]), 5)
    wait_for(f"readinessProbe {spec.probes['readinessProbe']}", answers(spec.probes["readinessProbe"]), READY_LIMIT_SECONDS)
    ready = time.monotonic() - started
    ok(f"probes {sorted(set(spec.probes.values()))} answer 200 on port {spec.port}; ready {ready:.2f} s after podman run")

    def counted():
        status, text = http(f"{base}/metrics")
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("upbit_received_messages_total{"))
        return total if status == 200 and total > 0 else None
    total, _ = wait_for("/metrics counting messages", counted, 15)
    ok(f"/metrics counts {total:.0f} messages from the simulator")

    pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    status_lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    uids = next(line.split()[1:] for line in status_lines if line.startswith("Uid:"))
    if set(uids) != {str(spec.uid)}:
        fail(f"the process runs as uids {uids}, not {spec.uid}")
    read_only = podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name).stdout.strip()
    if spec.read_only and read_only != "true":
        fail("the container's root filesystem is not read-only")
    ok(f"PID 1 of the container runs as uid {spec.uid}; read-only root filesystem: {read_only}")

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    body = json.dumps({"add": {"trade": ["KRW-DOGE"]}}).encode()
    status, answer = http(f"{base}/api/v1/subscriptions", "PATCH", body, headers)
    if status != 200:
        fail(f"PATCH /api/v1/subscriptions answered {status}: {answer}")
    saved = json.loads(answer)
    ok(f"PATCH accepted (revision {saved['revision']}) and written to the state volume")

    stop_started = time.monotonic()
    podman("stop", "-t", "30", name)
    stop = time.monotonic() - stop_started
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    if exit_code != "0":
        fail(f"the binary exited {exit_code} on SIGTERM:\n{logs()}")
    if stop > STOP_LIMIT_SECONDS:
        fail(f"podman stop took {stop:.2f} s (limit {STOP_LIMIT_SECONDS} s): SIGTERM was not handled by PID 1")
    ok(f"podman stop: exit code 0 after {stop:.2f} s (SIGTERM handled by the binary as PID 1)")

    # A container restart in a pod: a new container, the same emptyDir.
    podman("rm", name)
    restarted = run_container(image, spec, name, volume, config_dir, simulator)
    wait_for("readiness after the restart", answers(spec.probes["readinessProbe"]), READY_LIMIT_SECONDS)
    ready_again = time.monotonic() - restarted
    status, answer = http(f"{base}/api/v1/subscriptions")
    restored = json.loads(answer) if status == 200 else {}
    if restored.get("subscription") != saved["subscription"]:
        fail(f"after the restart the subscription is {restored}, not {saved}")
    if restored.get("revision", -1) < saved["revision"]:
        fail(f"after the restart the revision went back: {restored.get('revision')} < {saved['revision']}")
    ok(f"a new container on the same state volume restored the subscription at revision {restored['revision']}")
    podman("stop", "-t", "30", name)
    return {"ready": ready, "stop": stop, "ready_again": ready_again, "live": live}


if __name__ == "__main__":
    main()
