#!/usr/bin/env python3
"""Offline checks of deploy/ that no off-the-shelf tool does; run by deploy/check.sh.

    checks.py kustomization           every listed resource exists, every manifest is listed
    checks.py coherence               selectors, ports, names and mounts agree across manifests
    checks.py overlay NAME FILE BIN   a rendered overlay (kubectl kustomize overlays/NAME > FILE):
                                      the same coherence, what NAME promises (ha: 2 replicas on
                                      2 nodes, PDB, NATS; sharded: StatefulSet, shard index and
                                      count, headless Service, a state volume per pod), and
                                      `BIN check-config` with each pod's environment
    checks.py crds                    ServiceMonitor and PrometheusRule (no schema offline)
    checks.py dashboard [RULES_OUT]   the Grafana dashboard; RULES_OUT gets its queries as
                                      recording rules, for `promtool check rules` to parse
    checks.py metrics FILE            every metric, label and label value used by the rules and
                                      the dashboard exists in a real /metrics scrape
    checks.py compose                 deploy/compose: services, mounted files, scrape target
    checks.py dockerfile              the Dockerfile's structure (stages, user, entrypoint)
    checks.py config BIN              `BIN check-config` on the ConfigMap's config.toml and on
                                      the compose service's environment

Each prints what it verified and exits 1 listing every problem. Needs Python 3 and PyYAML.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
K8S = DEPLOY / "kubernetes" / "base"
OVERLAYS = DEPLOY / "kubernetes" / "overlays"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "upbit-exporter.json"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
HTTP_PORT = 8081


class Problems(list):
    def check(self, ok, message):
        if not ok:
            self.append(message)
        return ok


def finish(name, problems, summary):
    if problems:
        print(f"FAIL {name}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"ok   {name}: {summary}")
    return 0


# A rendered overlay's objects, when an overlay is checked; None: the base's files.
RENDERED = None


def manifests():
    """(path, document) for every Kubernetes object in deploy/kubernetes/base, or in the
    rendered overlay being checked (with the base's *.example.yaml, which no render holds)."""
    out = []
    if RENDERED is not None:
        out = [(Path("rendered"), doc) for doc in RENDERED]
        for path in sorted(K8S.glob("*.example.yaml")):
            out += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
        return out
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path, doc))
    return out


def by_kind(kind):
    return [doc for _, doc in manifests() if doc.get("kind") == kind]


def one(kind):
    docs = by_kind(kind)
    if len(docs) != 1:
        raise SystemExit(f"expected exactly one {kind} in {'the rendered overlay' if RENDERED is not None else 'deploy/kubernetes/base'}, found {len(docs)}")
    return docs[0]


# --- kustomization ------------------------------------------------------------------------------

def cmd_kustomization(_args):
    p = Problems()
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    p.check(kust.get("kind") == "Kustomization", "kustomization.yaml: kind is not Kustomization")
    p.check("namespace" not in kust, "kustomization.yaml: must stay namespace-agnostic")
    listed = kust.get("resources", [])
    for name in listed:
        p.check((K8S / name).is_file(), f"kustomization.yaml lists {name}, which does not exist")
    p.check(len(set(listed)) == len(listed), "kustomization.yaml lists a resource twice")
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml" or path.name.endswith(".example.yaml"):
            continue
        p.check(path.name in listed, f"{path.name} is not in kustomization.yaml's resources")
    p.check(all(not n.endswith(".example.yaml") for n in listed),
            "an *.example.yaml (placeholder) is listed in kustomization.yaml")
    return finish("kustomization", p, f"{len(listed)} resources, all present and listed")


# --- coherence ----------------------------------------------------------------------------------

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def cmd_coherence(_args, workload="Deployment", replicas=1, extra_egress=frozenset()):
    """The base as it is; an overlay with its workload kind, replica count and added egress."""
    p = Problems()
    dep, svc, sa = one(workload), one("Service"), one("ServiceAccount")
    pdb, netpol = one("PodDisruptionBudget"), one("NetworkPolicy")
    configmaps = {c["metadata"]["name"]: c for c in by_kind("ConfigMap")}
    secrets = {s["metadata"]["name"]: s for s in by_kind("Secret")}
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    if replicas is not None:  # None: the overlay's own check decides (shards: = shard.count)
        p.check(spec.get("replicas") == replicas, f"{workload}: replicas must be {replicas} (got {spec.get('replicas')})")
    p.check(matches(spec["selector"]["matchLabels"], pod_labels), "Deployment: selector does not match the pod labels")
    p.check(matches(svc["spec"]["selector"], pod_labels), "Service: selector does not match the pod labels")
    p.check(matches(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PodDisruptionBudget: selector does not match the pod")
    p.check(matches(netpol["spec"]["podSelector"]["matchLabels"], pod_labels), "NetworkPolicy: podSelector does not match the pod")
    p.check(pod.get("serviceAccountName") == sa["metadata"]["name"], "Deployment: serviceAccountName is not the ServiceAccount")
    p.check(sa.get("automountServiceAccountToken") is False, "ServiceAccount: automountServiceAccountToken must be false")
    p.check(pod.get("automountServiceAccountToken") is False, "Deployment: automountServiceAccountToken must be false")
    annotations = spec["template"]["metadata"].get("annotations", {})
    p.check(annotations.get("prometheus.io/scrape") == "true", "pod template: prometheus.io/scrape is not \"true\"")
    p.check(annotations.get("prometheus.io/port") == str(HTTP_PORT), "pod template: prometheus.io/port is not the HTTP port")
    p.check(annotations.get("prometheus.io/path") == "/metrics", "pod template: prometheus.io/path is not /metrics")

    containers = pod["containers"]
    p.check(len(containers) == 1, "Deployment: expected one container")
    c = containers[0]
    ports = {port.get("name"): port for port in c.get("ports", [])}
    p.check(ports.get("http", {}).get("containerPort") == HTTP_PORT, f"container: no port named http on {HTTP_PORT}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        p.check(get.get("path") == path and get.get("port") in ("http", HTTP_PORT), f"container: {probe} is not GET {path} on the http port")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for what in ("cpu", "memory"):
            p.check(what in res.get(kind, {}), f"container: resources.{kind}.{what} missing")
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    p.check(sc.get("readOnlyRootFilesystem") is True, "container: readOnlyRootFilesystem must be true")
    p.check(sc.get("allowPrivilegeEscalation") is False, "container: allowPrivilegeEscalation must be false")
    p.check(sc.get("capabilities", {}).get("drop") == ["ALL"], "container: capabilities must drop ALL")
    p.check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 10001, "pod: must run as non-root uid 10001 (the image's user)")
    p.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod: seccompProfile must be RuntimeDefault")
    p.check(isinstance(pod.get("terminationGracePeriodSeconds"), int), "pod: terminationGracePeriodSeconds missing")

    for port in svc["spec"]["ports"]:
        p.check(port.get("targetPort") in ports or port.get("targetPort") == HTTP_PORT,
                f"Service port {port.get('name')}: targetPort {port.get('targetPort')} is not a container port")
    p.check(any(port.get("name") == "http" and port.get("port") == HTTP_PORT for port in svc["spec"]["ports"]),
            f"Service: no port named http on {HTTP_PORT}")

    # --config points into the mounted ConfigMap, and the key exists.
    args = c.get("args", [])
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    if p.check("--config" in args, "container: no --config argument"):
        config_path = args[args.index("--config") + 1]
        mount_dir, key = os.path.split(config_path)
        mount = mounts.get(mount_dir)
        if p.check(mount is not None, f"container: nothing mounted at {mount_dir} for --config {config_path}"):
            cm_name = volumes.get(mount["name"], {}).get("configMap", {}).get("name")
            p.check(cm_name in configmaps, f"volume {mount['name']}: ConfigMap {cm_name} is not in deploy/kubernetes")
            if cm_name in configmaps:
                p.check(key in configmaps[cm_name].get("data", {}), f"ConfigMap {cm_name}: no key {key}")
    # The state_file, when set, is on a writable volume (the root filesystem is read-only).
    config_text = next(iter(configmaps.get("upbit-exporter", {}).get("data", {}).values()), "")
    state = re.search(r'^state_file\s*=\s*"([^"]*)"', config_text, re.M)
    if state and state.group(1):
        state_dir = os.path.dirname(state.group(1))
        mount = mounts.get(state_dir)
        claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        p.check(mount is not None and not mount.get("readOnly")
                and ("emptyDir" in volumes.get(mount["name"], {}) or mount["name"] in claims),
                f"state_file {state.group(1)}: {state_dir} is not a writable emptyDir or per-pod volume mount")
    # The token Secret reference is optional and names the example Secret's key.
    for env in c.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            p.check(ref.get("optional") is True, f"env {env['name']}: the Secret reference must be optional")
            example = secrets.get(ref["name"])
            p.check(example is not None and ref["key"] in example.get("stringData", example.get("data", {})),
                    f"env {env['name']}: secret.example.yaml does not show Secret {ref['name']} key {ref['key']}")

    # NetworkPolicy: ingress on the HTTP port only; egress DNS (UDP+TCP 53) and TCP 443 only.
    ingress_ports = {(q.get("protocol", "TCP"), q.get("port")) for r in netpol["spec"].get("ingress", []) for q in r.get("ports", [])}
    egress_ports = {(q.get("protocol", "TCP"), q.get("port")) for r in netpol["spec"].get("egress", []) for q in r.get("ports", [])}
    p.check(set(netpol["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}, "NetworkPolicy: policyTypes must be Ingress and Egress")
    p.check(ingress_ports == {("TCP", HTTP_PORT)}, f"NetworkPolicy: ingress ports {sorted(ingress_ports)} != TCP {HTTP_PORT}")
    p.check(egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)} | set(extra_egress), f"NetworkPolicy: egress ports {sorted(egress_ports)}")
    p.check(all(r.get("ports") for r in netpol["spec"].get("egress", []) + netpol["spec"].get("ingress", [])),
            "NetworkPolicy: a rule without ports allows every port")
    return finish("coherence", p, "selectors, ports, probes, security context, config mount, token Secret and NetworkPolicy agree")


# --- overlays -----------------------------------------------------------------------------------

NATS_PORT = 4222
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"


def container_env(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_nats(p, env):
    url = env.get("UPBIT_EXPORTER__NATS__URL", {}).get("value", "")
    p.check(url.startswith("nats://"), f"env UPBIT_EXPORTER__NATS__URL must be a nats:// URL (got {url!r})")
    p.check(env.get("UPBIT_EXPORTER__NATS__REQUIRED", {}).get("value") == "true",
            "env UPBIT_EXPORTER__NATS__REQUIRED must be \"true\" (readiness follows NATS)")


def check_ha(p, docs):
    dep = one("Deployment")
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    terms = pod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
    p.check(any(t.get("topologyKey") == "kubernetes.io/hostname" and matches(t.get("labelSelector", {}).get("matchLabels"), labels)
                for t in terms), "Deployment: no required pod anti-affinity by kubernetes.io/hostname selecting its own pods")
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    p.check(rolling.get("maxSurge") == 0 and rolling.get("maxUnavailable") == 1,
            "Deployment: with required anti-affinity the rollout must be maxSurge 0, maxUnavailable 1")
    pdb = one("PodDisruptionBudget")["spec"]
    p.check(pdb.get("minAvailable") == 1 and "maxUnavailable" not in pdb, f"PodDisruptionBudget: must be minAvailable 1 alone (got {pdb})")
    check_nats(p, container_env(pod["containers"][0]))
    return 2


def check_sharded(p, docs):
    base = next(d for d in yaml.safe_load_all((K8S / "deployment.yaml").read_text()) if d)
    p.check(not by_kind("Deployment"), "a Deployment is left beside the StatefulSet")
    sts = one("StatefulSet")
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    env = container_env(pod["containers"][0])
    count = env.get("UPBIT_EXPORTER__SHARD__COUNT", {}).get("value")
    p.check(count is not None and count == str(spec.get("replicas")) and spec.get("replicas", 0) >= 2,
            f"StatefulSet: replicas {spec.get('replicas')} != UPBIT_EXPORTER__SHARD__COUNT {count!r}: change both together")
    ref = env.get("UPBIT_EXPORTER__SHARD__INDEX", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    p.check(ref == POD_INDEX, f"env UPBIT_EXPORTER__SHARD__INDEX must come from {POD_INDEX} (got {ref!r})")
    svc = one("Service")
    p.check(spec.get("serviceName") == svc["metadata"]["name"] and svc["spec"].get("clusterIP") == "None",
            "StatefulSet: serviceName must be the headless (clusterIP None) Service")
    p.check(spec.get("podManagementPolicy") == "Parallel", "StatefulSet: shards are independent: podManagementPolicy Parallel")
    p.check(any(t["metadata"]["name"] == "state" for t in spec.get("volumeClaimTemplates", [])),
            "StatefulSet: no volumeClaimTemplate named state (the state file per pod)")
    p.check(one("PodDisruptionBudget")["spec"].get("maxUnavailable") == 1, "PodDisruptionBudget: at most one shard out at a time")
    # The pod template is the base Deployment's, plus the shard and NATS variables and less the
    # state emptyDir (the per-pod volume replaces it): nothing else may drift.
    ours, theirs = json.loads(json.dumps(spec["template"])), json.loads(json.dumps(base["spec"]["template"]))
    added = {"UPBIT_EXPORTER__SHARD__INDEX", "UPBIT_EXPORTER__SHARD__COUNT", "UPBIT_EXPORTER__NATS__URL", "UPBIT_EXPORTER__NATS__REQUIRED"}
    ours["spec"]["containers"][0]["env"] = [e for e in ours["spec"]["containers"][0].get("env", []) if e["name"] not in added]
    ours["metadata"]["labels"].pop("app.kubernetes.io/part-of", None)
    theirs["spec"]["volumes"] = [v for v in theirs["spec"]["volumes"] if v["name"] != "state"]
    p.check(ours == theirs, "StatefulSet: the pod template differs from base/deployment.yaml's beyond the shard and NATS "
                            "variables and the state volume: copy the change over")
    check_nats(p, env)
    return int(count) if count and count.isdigit() else 0


def environment_without_settings():
    """This process's environment without any UPBIT_EXPORTER__ setting of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("UPBIT_EXPORTER__")}


def configmap_config(tmp):
    """The ConfigMap's config.toml written into `tmp`, its state_file pointed into `tmp` (the
    directory exists in the pod, an emptyDir or a volume; here it must be writable)."""
    cm = next(c for c in by_kind("ConfigMap") if c["metadata"]["name"] == "upbit-exporter")
    config = Path(tmp) / "config.toml"
    text = cm["data"]["config.toml"]
    config.write_text(re.sub(r'^state_file\s*=.*$', f'state_file = "{tmp}/subscription.json"', text, flags=re.M))
    return config


def check_overlay_config(p, binary, replicas):
    """`BIN check-config` on the ConfigMap's config.toml with each pod's literal environment (the
    pod index of each ordinal filled in)."""
    workload = (by_kind("StatefulSet") or by_kind("Deployment"))[0]
    env_spec = workload["spec"]["template"]["spec"]["containers"][0].get("env", [])
    clean = environment_without_settings()
    with tempfile.TemporaryDirectory() as tmp:
        config = configmap_config(tmp)
        for ordinal in range(replicas):
            env = dict(clean)
            for e in env_spec:
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == POD_INDEX:
                    env[e["name"]] = str(ordinal)
            run = subprocess.run([binary, "check-config", "--config", str(config)], env=env, capture_output=True, text=True, timeout=30)
            p.check(run.returncode == 0, f"pod {ordinal}: check-config exited {run.returncode}: {run.stderr.strip() or run.stdout.strip()}")


def cmd_overlay(args):
    global RENDERED
    if len(args) != 3 or args[0] not in ("ha", "sharded"):
        raise SystemExit("usage: checks.py overlay ha|sharded RENDERED_FILE BIN")
    name, rendered, binary = args
    RENDERED = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    workload = "StatefulSet" if name == "sharded" else "Deployment"
    want = None if name == "sharded" else 2
    if cmd_coherence([], workload=workload, replicas=want, extra_egress={("TCP", NATS_PORT)}) != 0:
        return 1
    p = Problems()
    replicas = (check_sharded if name == "sharded" else check_ha)(p, RENDERED)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        p.check(len(by_kind(kind)) == 1, f"the overlay lost the base's {kind}")
    if not p:
        check_overlay_config(p, binary, replicas)
    promise = ("2 replicas, required anti-affinity by hostname, maxSurge 0, PDB minAvailable 1, NATS required"
               if name == "ha" else
               f"StatefulSet of {replicas} = shard.count, index from the pod-index label, headless Service, state volume "
               "per pod, pod template as the base's, NATS required")
    return finish(f"overlay {name}", p, f"{promise}; check-config accepts every pod's configuration")


# --- CRDs ---------------------------------------------------------------------------------------

def cmd_crds(_args):
    p = Problems()
    svc = one("Service")
    seen = set()
    for path, doc in manifests():
        kind = doc.get("kind")
        if kind not in CRD_KINDS:
            continue
        seen.add(kind)
        where = f"{path.name} ({kind})"
        p.check(doc.get("apiVersion") == "monitoring.coreos.com/v1", f"{where}: apiVersion is not monitoring.coreos.com/v1")
        p.check(bool(doc.get("metadata", {}).get("name")), f"{where}: metadata.name missing")
        p.check("namespace" not in doc.get("metadata", {}), f"{where}: must stay namespace-agnostic")
        spec = doc.get("spec")
        if not p.check(isinstance(spec, dict), f"{where}: spec missing"):
            continue
        if kind == "ServiceMonitor":
            p.check(set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit"},
                    f"{where}: unexpected spec fields {sorted(set(spec))}")
            p.check(matches(spec.get("selector", {}).get("matchLabels"), svc["metadata"].get("labels", {})),
                    f"{where}: selector does not match the Service's labels")
            endpoints = spec.get("endpoints") or []
            p.check(len(endpoints) >= 1, f"{where}: no endpoints")
            port_names = {q.get("name") for q in svc["spec"]["ports"]}
            for e in endpoints:
                p.check(e.get("port") in port_names, f"{where}: endpoint port {e.get('port')} is not a Service port name")
                p.check(e.get("path", "/metrics") == "/metrics", f"{where}: endpoint path is not /metrics")
                for field in ("interval", "scrapeTimeout"):
                    if field in e:
                        p.check(re.fullmatch(r"\d+(ms|s|m|h)", str(e[field])) is not None, f"{where}: {field} {e[field]!r} is not a duration")
        if kind == "PrometheusRule":
            p.check(set(spec) == {"groups"}, f"{where}: spec must hold only groups")
            source = yaml.safe_load(RULES.read_text())["groups"]
            p.check(spec.get("groups") == source, f"{where}: groups differ from deploy/prometheus/rules.yml (run deploy/gen.py)")
            for group in spec.get("groups", []):
                for rule in group.get("rules", []):
                    p.check(("alert" in rule) != ("record" in rule) and "expr" in rule, f"{where}: malformed rule {rule.get('alert') or rule.get('record')}")
    p.check(seen == CRD_KINDS, f"missing {sorted(CRD_KINDS - seen)}")
    return finish("crds", p, "ServiceMonitor selects the Service's http port; PrometheusRule groups equal rules.yml")


# --- dashboard ----------------------------------------------------------------------------------

DS_UID = "${datasource}"


def dashboard_queries(dash):
    """(panel title, refId, expr) for every target, and the variable queries."""
    out = []
    for panel in dash.get("panels", []):
        for t in panel.get("targets", []):
            out.append((panel.get("title"), t.get("refId"), t.get("expr", "")))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            out.append((f"variable {v.get('name')}", "query", q.get("query") if isinstance(q, dict) else q))
    return out


def concrete(expr):
    """A dashboard query with Grafana's variables replaced, so PromQL tools can parse it."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
            .replace("${code}", ".*").replace("$code", ".*"))


MARKET_METRIC = re.compile(r"\bupbit_(received_messages_total|trade_|orderbook_|candle_|last_message_timestamp|market_(?!list_))")
OUTER_AGGREGATION = re.compile(r"^\s*\(?\s*(?:2\s*\*\s*\(\s*)?(?:time\(\)\s*-\s*)?(sum|max|min|avg|count)\b(?:\s+by\s*\(([^)]*)\))?")


def cmd_dashboard(args):
    p = Problems()
    try:
        dash = json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as e:
        return finish("dashboard", Problems([f"{DASHBOARD.name}: invalid JSON: {e}"]), "")
    p.check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36, "schemaVersion must be 36 or later")
    p.check(bool(dash.get("uid")) and bool(dash.get("title")), "uid and title are required")
    p.check("__inputs" not in dash, "__inputs makes provisioning fail: use the datasource variable")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    p.check(ds.get("type") == "datasource" and ds.get("query") == "prometheus", "variable datasource: must be type datasource, query prometheus")
    code = variables.get("code", {})
    q = code.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    p.check(code.get("type") == "query" and q == "label_values(upbit_received_messages_total, code)",
            "variable code: must query label_values(upbit_received_messages_total, code)")
    p.check(code.get("multi") is True and code.get("includeAll") is True, "variable code: must be multi and includeAll")
    p.check(code.get("datasource", {}).get("uid") == DS_UID, "variable code: datasource must be ${datasource}")
    panels = dash.get("panels", [])
    ids = [panel.get("id") for panel in panels]
    p.check(len(panels) >= 10, f"only {len(panels)} panels")
    p.check(len(ids) == len(set(ids)) and None not in ids, f"panel ids must be unique and set: {ids}")
    for panel in panels:
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        p.check(panel.get("type") in ("timeseries", "stat"), f"{name}: type {panel.get('type')!r} (graph and other legacy types are deprecated)")
        p.check(panel.get("datasource", {}).get("uid") == DS_UID, f"{name}: datasource is not ${{datasource}}")
        p.check(all(k in panel.get("gridPos", {}) for k in "xywh"), f"{name}: gridPos incomplete")
        targets = panel.get("targets", [])
        p.check(bool(targets), f"{name}: no queries")
        refs = [t.get("refId") for t in targets]
        p.check(len(refs) == len(set(refs)), f"{name}: duplicate refIds")
        for t in targets:
            p.check(t.get("datasource", {}).get("uid") == DS_UID, f"{name} query {t.get('refId')}: datasource is not ${{datasource}}")
            p.check(bool(t.get("expr")), f"{name} query {t.get('refId')}: empty expr")
    titles = " ".join(panel.get("title", "").lower() for panel in panels)
    for wanted in ("messages per market", "received bytes", "connections", "trade price", "spread", "exchange delay",
                   "staleness", "decode errors", "dropped", "pipeline latency", "connected", "nats sink"):
        p.check(wanted in titles, f"no panel titled like {wanted!r}")
    # Two replicas of a pair report the same market: a per-market query takes one of them (max by
    # code) or adds after such a max, never shows or sums each replica's copy (a heuristic on the
    # query's outer aggregation, enough to catch a bare selector or a plain sum by code).
    for title, ref, expr in dashboard_queries(dash):
        if MARKET_METRIC.search(expr) and not title.startswith("variable"):
            agg = OUTER_AGGREGATION.match(expr)
            # A sum adds the replicas' copies unless it adds per-market maxima, or both sides of
            # a ratio (VWAP: each copy doubles numerator and denominator alike).
            summed = agg is not None and agg.group(1) in ("sum", "count") and "max by" not in expr and " / " not in expr
            p.check(agg is not None and "instance" not in (agg.group(2) or "") and not summed,
                    f"panel {title!r} {ref}: a per-market query must aggregate the instance away (e.g. max by (code)): {expr}")
    if args:
        # Every query as a recording rule, so `promtool check rules` parses each expression.
        rules = [{"record": f"dashboard:panel_{i}:query", "expr": concrete(expr)}
                 for i, (_, _, expr) in enumerate(dashboard_queries(dash)) if not expr.startswith("label_values(")]
        Path(args[0]).write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, sort_keys=False))
    return finish("dashboard", p, f"{len(panels)} panels (timeseries/stat), unique ids, every panel and query on ${{datasource}}, variables datasource and code, "
                                  "per-market queries aggregate the instance away")


# --- metrics against a real scrape --------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
NAME = re.compile(r"(?<![a-zA-Z0-9_:$.\"])((?:upbit|process)_[a-zA-Z0-9_:]*|up)(?![a-zA-Z0-9_:(\"])")
SELECTOR = re.compile(r"((?:upbit|process)_[a-zA-Z0-9_:]*|\bup)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
TARGET_LABELS = {"job", "instance"}  # added by Prometheus at scrape time


def parse_scrape(text):
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind.strip()
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            labels = samples.setdefault(m.group(1), {})
            for k, v in LABEL.findall(m.group(2) or ""):
                labels.setdefault(k, set()).add(v)
    return samples, types


def used_expressions():
    """(where, expr) from the rules and the dashboard."""
    out = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            out.append((f"rules.yml {rule.get('alert') or rule.get('record')}", rule["expr"]))
    dash = json.loads(DASHBOARD.read_text())
    for title, ref, expr in dashboard_queries(dash):
        out.append((f"dashboard {title!r} {ref}", expr))
    return out


def cmd_metrics(args):
    if not args:
        raise SystemExit("usage: checks.py metrics FILE")
    samples, types = parse_scrape(Path(args[0]).read_text())
    p = Problems()
    p.check(len(samples) > 20, f"{args[0]}: only {len(samples)} metric names; is it a /metrics scrape?")
    names_used, label_checks = set(), 0
    for where, expr in used_expressions():
        names = set(NAME.findall(expr))
        # A constant (an alert parameter recorded as vector(N)) names no metric, rightly.
        constant = re.fullmatch(r"vector\([0-9.eE+-]+\)", expr.strip()) is not None
        p.check(bool(names) or constant or where.startswith("dashboard 'variable"), f"{where}: no metric name found in {expr!r}")
        for name in names:
            names_used.add(name)
            if name == "up":
                continue
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            found = name in samples or (base != name and types.get(base) in ("histogram", "summary") and f"{base}_bucket" in samples)
            p.check(found, f"{where}: metric {name} is not in the scrape")
        # Grouping and matching labels (by, on, ...) exist on a metric of the same expression.
        carried = set().union(*(samples.get(n, {}).keys() for n in names)) if names else set()
        for clause in GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in clause.split(","))):
                if label in TARGET_LABELS or label == "le":
                    continue
                label_checks += 1
                p.check(label in carried, f"{where}: label {label!r} (by/on) is on none of {sorted(names)}")
        for name, body in SELECTOR.findall(expr):
            if name == "up" or name not in samples:
                continue
            labels = samples[name]
            for label, op, value in MATCHER.findall(body):
                if label in TARGET_LABELS:
                    continue
                label_checks += 1
                if not p.check(label in labels, f"{where}: {name} has no label {label!r} (has {sorted(labels)})"):
                    continue
                if "$" in value:
                    continue  # a Grafana variable
                literals = value.split("|") if op in ("=~", "!~") else [value]
                for literal in literals:
                    if re.fullmatch(r"[A-Za-z0-9_.\-]+", literal):
                        p.check(literal in labels[label], f"{where}: {name}{{{label}={literal!r}}} never appears in the scrape (values: {sorted(labels[label])})")
    return finish("metrics", p, f"{len(names_used)} metric names and {label_checks} label matchers of the rules and dashboard (selectors, by/on) exist in {args[0]}")


# --- compose ------------------------------------------------------------------------------------

def cmd_compose(_args):
    p = Problems()
    compose = yaml.safe_load(COMPOSE.read_text())
    base = COMPOSE.parent
    services = compose.get("services", {})
    for name in ("simulator", "upbit-exporter", "prometheus", "grafana"):
        p.check(name in services, f"compose.yaml: no service {name}")
    mounts = {}
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = (base / build.get("context", ".")).resolve()
            p.check((context / build.get("dockerfile", "Dockerfile")).is_file(), f"service {name}: no Dockerfile in build context {context}")
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                p.check((base / source).exists(), f"service {name}: mounted {source} does not exist")
                mounts[(name, target)] = (base / source).resolve()
        for dep in svc.get("depends_on", []):
            p.check(dep in services, f"service {name}: depends on unknown service {dep}")
    exporter = services.get("upbit-exporter", {})
    env = exporter.get("environment", {})
    listen_port = env.get("UPBIT_EXPORTER__HTTP__LISTEN", f"0.0.0.0:{HTTP_PORT}").rsplit(":", 1)[1]
    url = env.get("UPBIT_EXPORTER__UPBIT__URL", "")
    if url:
        sim_port = re.search(r"ws://simulator:(\d+)/", url)
        sim_cmd = " ".join(services.get("simulator", {}).get("command", []))
        p.check(sim_port is not None and f"0.0.0.0:{sim_port.group(1)}" in sim_cmd,
                f"upbit-exporter's URL {url} does not reach the simulator's --listen ({sim_cmd})")
    # Prometheus: the mounted config scrapes the exporter and loads the mounted rules.yml.
    prom_cfg_path = mounts.get(("prometheus", "/etc/prometheus/prometheus.yml"))
    if p.check(prom_cfg_path is not None, "prometheus: no prometheus.yml mounted at /etc/prometheus/prometheus.yml"):
        cfg = yaml.safe_load(prom_cfg_path.read_text())
        for rule_file in cfg.get("rule_files", []):
            p.check(mounts.get(("prometheus", rule_file)) == RULES.resolve(), f"prometheus: rule file {rule_file} is not deploy/prometheus/rules.yml")
        jobs = {j["job_name"]: j for j in cfg.get("scrape_configs", [])}
        if p.check("upbit-exporter" in jobs, "prometheus.yml: no job upbit-exporter (the UpbitExporterDown alert needs it)"):
            targets = [t for sc in jobs["upbit-exporter"].get("static_configs", []) for t in sc.get("targets", [])]
            p.check(targets == [f"upbit-exporter:{listen_port}"], f"prometheus.yml: targets {targets} != upbit-exporter:{listen_port}")
    # Grafana: datasource to the prometheus service; the dashboard provider path is deploy/grafana.
    ds_dir = mounts.get(("grafana", "/etc/grafana/provisioning/datasources"))
    db_dir = mounts.get(("grafana", "/etc/grafana/provisioning/dashboards"))
    if p.check(ds_dir is not None and db_dir is not None, "grafana: provisioning directories not mounted"):
        datasources = [d for f in sorted(ds_dir.glob("*.y*ml")) for d in yaml.safe_load(f.read_text()).get("datasources", [])]
        p.check(any(d.get("type") == "prometheus" and d.get("url") == "http://prometheus:9090" and d.get("isDefault") for d in datasources),
                "grafana: no default prometheus datasource at http://prometheus:9090")
        providers = [d for f in sorted(db_dir.glob("*.y*ml")) for d in yaml.safe_load(f.read_text()).get("providers", [])]
        paths = [prov.get("options", {}).get("path") for prov in providers]
        p.check(any(mounts.get(("grafana", path)) == DASHBOARD.parent.resolve() for path in paths),
                f"grafana: no dashboard provider reads the mounted deploy/grafana ({paths})")
    return finish("compose", p, f"{len(services)} services; build context, mounted files, scrape target, rules and Grafana provisioning line up")


# --- Dockerfile ---------------------------------------------------------------------------------

def cmd_dockerfile(_args):
    p = Problems()
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    stages, current, global_args = [], None, {}
    for line in instructions:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            current = {"from": parts[0], "name": name, "lines": []}
            stages.append(current)
        elif current is not None:
            current["lines"].append((word, rest.strip()))
        elif word == "ARG":
            key, _, value = rest.partition("=")
            global_args[key.strip()] = value.strip()
    named = {s["name"]: s for s in stages if s["name"]}
    p.check(len(stages) >= 4, f"expected build, prebuilt, binary and runtime stages, found {len(stages)} FROM")
    # Where the binary comes from: compiled (`build`, the default) or handed in (`prebuilt`).
    p.check(global_args.get("BINARY") == "build", f"ARG BINARY must default to build (got {global_args.get('BINARY')!r})")
    build = named.get("build")
    if p.check(build is not None, "no stage named build"):
        p.check(build["from"].startswith("rust:"), f"build stage is {build['from']}, not a rust image")
        builds = [rest for w, rest in build["lines"] if w == "RUN" and "cargo build" in rest]
        p.check(len(builds) >= 2, "expected a dependency-only cargo build before the real one (layer caching)")
        p.check(all("--locked" in b and "--release" in b and "x86_64-unknown-linux-musl" in b for b in builds),
                "every cargo build must be --release --locked --target x86_64-unknown-linux-musl (static)")
    prebuilt = named.get("prebuilt")
    if p.check(prebuilt is not None, "no stage named prebuilt"):
        p.check(prebuilt["from"] == "scratch" and any(w == "COPY" and rest.split()[0] == "dist/" for w, rest in prebuilt["lines"]),
                "the prebuilt stage must be FROM scratch and COPY dist/ (what scripts/image lays out)")
    p.check(named.get("binary", {}).get("from") == "${BINARY}", "a stage `FROM ${BINARY} AS binary` must pick the binary's source")
    if stages:
        final = stages[-1]
        p.check(final["name"] == "runtime" and final["from"] == "scratch", f"the last stage must be `FROM scratch AS runtime` (got {final['from']} {final['name']})")
        words = [w for w, _ in final["lines"]]
        users = [rest for w, rest in final["lines"] if w == "USER"]
        p.check(bool(users) and users[-1].split(":")[0] not in ("root", "0") and users[-1].split(":")[0].isdigit(),
                f"runtime stage must end as a numeric non-root USER (got {users})")
        entry = [rest for w, rest in final["lines"] if w == "ENTRYPOINT"]
        if p.check(len(entry) == 1, "runtime stage needs exactly one ENTRYPOINT"):
            try:
                form = json.loads(entry[0])
                p.check(isinstance(form, list) and form[0].startswith("/"), "ENTRYPOINT must be an exec-form array with an absolute path")
            except json.JSONDecodeError:
                p.append("ENTRYPOINT is shell form: SIGTERM would not reach the process")
        cmd = [rest for w, rest in final["lines"] if w == "CMD"]
        for c in cmd:
            p.check(c.startswith("["), "CMD must be exec form")
        p.check(any(w == "EXPOSE" and str(HTTP_PORT) in rest.split() for w, rest in final["lines"]), f"runtime stage must EXPOSE {HTTP_PORT}")
        copies = [rest for w, rest in final["lines"] if w == "COPY"]
        p.check(copies and all("--from=binary" in c for c in copies), "the runtime stage copies only from the binary stage")
        p.check(any("--chown=" in c and "/var/lib/upbit-exporter" in c for c in copies),
                "the runtime stage must give the non-root user its state directory /var/lib/upbit-exporter")
        p.check("RUN" not in words, "the scratch runtime stage cannot RUN anything")
        p.check("ADD" not in words, "use COPY, not ADD")
    ignore = (ROOT / ".dockerignore").read_text().split() if (ROOT / ".dockerignore").exists() else []
    p.check(any(x.strip("/") == "target" for x in ignore) and any(x.strip("/") == ".git" for x in ignore), ".dockerignore must exclude target and .git")
    return finish("dockerfile", p, f"{len(stages)} stages (build|prebuilt -> binary -> scratch runtime), static musl build, "
                                   f"numeric non-root USER, exec-form ENTRYPOINT, EXPOSE {HTTP_PORT}, .dockerignore")


# --- configuration through the real binary ------------------------------------------------------

def cmd_config(args):
    if not args:
        raise SystemExit("usage: checks.py config BIN")
    binary = args[0]
    p = Problems()
    clean_env = environment_without_settings()
    with tempfile.TemporaryDirectory() as tmp:
        config = configmap_config(tmp)
        run = subprocess.run([binary, "check-config", "--config", str(config)], env=clean_env, capture_output=True, text=True, timeout=30)
        p.check(run.returncode == 0, f"ConfigMap config.toml: check-config exited {run.returncode}: {run.stderr.strip() or run.stdout.strip()}")
    compose = yaml.safe_load(COMPOSE.read_text())
    env = {**clean_env, **{k: str(v) for k, v in compose["services"]["upbit-exporter"].get("environment", {}).items()}}
    run2 = subprocess.run([binary, "check-config"], env=env, capture_output=True, text=True, timeout=30)
    p.check(run2.returncode == 0, f"compose upbit-exporter environment: check-config exited {run2.returncode}: {run2.stderr.strip() or run2.stdout.strip()}")
    return finish("config", p, f"{shlex.quote(binary)} check-config accepts the ConfigMap's config.toml and the compose environment")


COMMANDS = {
    "kustomization": cmd_kustomization,
    "coherence": cmd_coherence,
    "overlay": cmd_overlay,
    "crds": cmd_crds,
    "dashboard": cmd_dashboard,
    "metrics": cmd_metrics,
    "compose": cmd_compose,
    "dockerfile": cmd_dockerfile,
    "config": cmd_config,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
