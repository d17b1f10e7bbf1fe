#!/usr/bin/env python3
"""Renders deploy/k8s's overlays with `kubectl kustomize` and checks them.

Run from the repository root or a Bazel runfiles root:
  python3 tests/deploy/k8s_manifests_test.py

For each overlay (cpu, gpu):
- every container's flags (its args plus the --flagfile from its ConfigMap)
  are flags the daemon really has (`lorad --helpfull`, `lora-worker
  --helpfull`); ports, Services and probes agree with --listen/--http;
- every file a flag names lies on a volume mount (the root filesystem is
  read-only), the tokens file is the one the init container writes, and
  each Secret key and ConfigMap mounted exists (lora-tokens: as
  deploy/k8s/make-secret.sh writes it);
- resources, security context, grace period against --stop_grace, GPU
  requests, network policy, monitors, disruption budget and autoscaler;
- and live: the real lorad and lora-worker start with the rendered flag
  files (paths moved to a scratch folder, addresses to 127.0.0.1) and
  answer the manifests' probes: gRPC health, /readyz, /healthz.
"""
import base64
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testlib as lib  # noqa: E402

OVERLAYS = ["cpu", "gpu"]
# Seconds a drained worker needs after its children stop, to upload their
# checkpoints and hand the runs back: the grace period must cover
# --stop_grace plus this.
UPLOAD_ALLOWANCE_SECONDS = 60
DAEMON_OF_IMAGE = {
    "lora-sweep/coordinator": lib.LORAD,
    "lora-sweep/worker-cpu": lib.LORA_WORKER,
    "lora-sweep/worker-cuda": lib.LORA_WORKER,
}
# Flags whose values are paths: (flag, kind) with kind "file" (the file's
# folder must be mounted) or "dir" (the folder itself must be mounted).
PATH_FLAGS = {
    "db": "file",
    "artifact_root": "dir",
    "tokens_file": "file",
    "token_file": "file",
    "work_dir": "dir",
    "cache_dir": "dir",
}
WRITABLE_PATH_FLAGS = {"db", "artifact_root", "work_dir", "cache_dir"}


_deploy_copy = None


def deploy_copy():
    """deploy/k8s and deploy/docker copied as plain files: kustomize does
    not read the symbolic links a Bazel runfiles tree is made of."""
    global _deploy_copy
    if _deploy_copy is None:
        root = lib.scratch_dir("k8s-")
        for part in ("k8s", "docker"):
            shutil.copytree(f"deploy/{part}", f"{root}/deploy/{part}")
        _deploy_copy = root
    return _deploy_copy


def render(overlay):
    if shutil.which("kubectl") is None:
        raise AssertionError("kubectl is not on PATH: this test renders the "
                             "overlays with `kubectl kustomize` (kubectl >= "
                             "1.27, kustomize v5)")
    result = subprocess.run(
        ["kubectl", "kustomize", f"{deploy_copy()}/deploy/k8s/overlays/{overlay}"],
        capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize overlays/{overlay} failed:\n"
                             f"{result.stderr}")
    return lib.load_yaml_documents(result.stdout)


def tokens_secret():
    """The Secret deploy/k8s/make-secret.sh prints (after its Namespace)."""
    result = subprocess.run([f"{deploy_copy()}/deploy/k8s/make-secret.sh"],
                            capture_output=True,
                            text=True, timeout=60, check=True)
    namespace, secret = lib.load_yaml_documents(result.stdout)
    assert namespace["kind"] == "Namespace", namespace
    assert secret["kind"] == "Secret", secret
    assert secret["metadata"]["namespace"] == namespace["metadata"]["name"]
    return secret


def selects(selector, labels):
    """True when a label selector (matchLabels/matchExpressions) matches."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def mount_for(container, path):
    """The volumeMount whose mountPath holds `path` (longest match)."""
    best = None
    for mount in container.get("volumeMounts", []):
        root = mount["mountPath"].rstrip("/")
        if path == root or path.startswith(root + "/"):
            if best is None or len(root) > len(best["mountPath"]):
                best = mount
    return best


class Overlay:
    """One rendered overlay and the facts the checks need."""

    def __init__(self, name):
        self.name = name
        self.docs = render(name)
        self.by_kind = {}
        for doc in self.docs:
            self.by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        self.secret = tokens_secret()

    def one(self, kind, name):
        try:
            return self.by_kind[kind][name]
        except KeyError:
            raise AssertionError(f"overlay {self.name}: no {kind} {name}")

    def workloads(self):
        for kind in ("StatefulSet", "Deployment"):
            for doc in self.by_kind.get(kind, {}).values():
                yield doc

    def volume(self, workload, name):
        """The pod volume, or the StatefulSet volume claim template, `name`."""
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if volume["name"] == name:
                return volume
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            if claim["metadata"]["name"] == name:
                return {"name": name, "persistentVolumeClaim": claim}
        raise AssertionError(f"{workload['metadata']['name']}: no volume {name}")

    def container_flags(self, workload, container):
        """[(name, value)]: the flagfile's lines (from its ConfigMap) in
        place of --flagfile, then the other args, $(VAR)s expanded."""
        where = f"{workload['metadata']['name']}/{container['name']}"
        env = {}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            else:
                env[variable["name"]] = f"<{variable['name']}>"
        flags = []
        for name, value in lib.parse_flag_lines(container.get("args", []), where):
            value = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value or "")
            if name != "flagfile":
                flags.append((name, value))
                continue
            mount = mount_for(container, value)
            if mount is None:
                raise AssertionError(f"{where}: --flagfile={value} is on no mount")
            volume = self.volume(workload, mount["name"])
            if "configMap" not in volume:
                raise AssertionError(f"{where}: --flagfile={value} is not a ConfigMap")
            config_map = self.one("ConfigMap", volume["configMap"]["name"])
            key = value[len(mount["mountPath"].rstrip("/")) + 1:]
            if key not in config_map.get("data", {}):
                raise AssertionError(f"{where}: ConfigMap {config_map['metadata']['name']}"
                                     f" has no key {key}")
            flags.extend(lib.parse_flag_lines(
                config_map["data"][key].splitlines(),
                f"{config_map['metadata']['name']}/{key}"))
        return flags


_overlays = {}


def overlay(name):
    if name not in _overlays:
        _overlays[name] = Overlay(name)
    return _overlays[name]


def image_name(container):
    return container["image"].rsplit(":", 1)[0]


class ManifestChecks:
    """Mixed into one TestCase per overlay (OVERLAY set by the subclass)."""

    OVERLAY = None

    @classmethod
    def setUpClass(cls):
        cls.o = overlay(cls.OVERLAY)
        cls.lorad = cls.o.one("StatefulSet", "lorad")
        cls.worker = cls.o.one("Deployment", "lora-worker")
        cls.lorad_container = cls.lorad["spec"]["template"]["spec"]["containers"][0]
        cls.worker_container = cls.worker["spec"]["template"]["spec"]["containers"][0]
        cls.lorad_flags = dict(cls.o.container_flags(cls.lorad, cls.lorad_container))
        cls.worker_flags = dict(cls.o.container_flags(cls.worker, cls.worker_container))

    def containers(self):
        for workload in self.o.workloads():
            spec = workload["spec"]["template"]["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield workload, container

    def test_every_flag_is_a_real_daemon_flag(self):
        for workload, container in self.containers():
            if container.get("command"):
                continue  # init containers run a plain command, not a daemon
            binary = DAEMON_OF_IMAGE[image_name(container)]
            known = lib.daemon_flags(binary)
            for name, value in self.o.container_flags(workload, container):
                self.assertIn(name, known,
                              f"{workload['metadata']['name']}: --{name}={value} is "
                              f"not a flag of {os.path.basename(binary)}")
            # A flag given twice silently takes the last value.
            names = [n for n, _ in self.o.container_flags(workload, container)]
            self.assertEqual(len(names), len(set(names)), names)

    def test_ports_services_and_probes_agree_with_flags(self):
        grpc_port = lib.port_of(self.lorad_flags["listen"])
        lorad_http = lib.port_of(self.lorad_flags["http"])
        worker_http = lib.port_of(self.worker_flags["http"])
        self.assertTrue(self.lorad_flags["listen"].startswith("0.0.0.0:"))
        self.assertTrue(self.lorad_flags["http"].startswith("0.0.0.0:"))
        self.assertTrue(self.worker_flags["http"].startswith("0.0.0.0:"))
        lorad_ports = {p["name"]: p["containerPort"] for p in self.lorad_container["ports"]}
        worker_ports = {p["name"]: p["containerPort"] for p in self.worker_container["ports"]}
        self.assertEqual(lorad_ports, {"grpc": grpc_port, "metrics": lorad_http})
        self.assertEqual(worker_ports, {"metrics": worker_http})

        def resolve(port, ports):
            return ports[port] if isinstance(port, str) else port

        # lorad: gRPC health probes on the gRPC port, /readyz on HTTP.
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            self.assertIn(probe, self.lorad_container)
        for probe in ("startupProbe", "livenessProbe"):
            self.assertEqual(self.lorad_container[probe]["grpc"]["port"], grpc_port)
        readiness = self.lorad_container["readinessProbe"]["httpGet"]
        self.assertEqual(resolve(readiness["port"], lorad_ports), lorad_http)
        self.assertEqual(readiness["path"], "/readyz")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            http_get = self.worker_container[probe]["httpGet"]
            self.assertEqual(resolve(http_get["port"], worker_ports), worker_http)
            self.assertEqual(http_get["path"], path)

        # The Service workers dial: --coordinator=<service>:<port>.
        host, port = self.worker_flags["coordinator"].rsplit(":", 1)
        service = self.o.one("Service", host)
        self.assertTrue(selects({"matchLabels": service["spec"]["selector"]},
                                self.lorad["spec"]["template"]["metadata"]["labels"]))
        by_port = {p["port"]: p for p in service["spec"]["ports"]}
        self.assertIn(int(port), by_port, f"Service {host} has no port {port}")
        self.assertEqual(resolve(by_port[int(port)]["targetPort"], lorad_ports), grpc_port)
        for entry in service["spec"]["ports"]:
            self.assertIn(entry["targetPort"], lorad_ports)
        headless = self.o.one("Service", self.lorad["spec"]["serviceName"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")

    def test_paths_lie_on_volumes_and_writable_ones_are_writable(self):
        for workload, container, flags in (
                (self.lorad, self.lorad_container, self.lorad_flags),
                (self.worker, self.worker_container, self.worker_flags)):
            self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
            for flag, kind in PATH_FLAGS.items():
                if flag not in flags:
                    continue
                path = flags[flag]
                folder = os.path.dirname(path) if kind == "file" else path
                mount = mount_for(container, folder if kind == "file" else path)
                self.assertIsNotNone(mount, f"--{flag}={path}: on no volume mount "
                                            "(the root filesystem is read-only)")
                if flag in WRITABLE_PATH_FLAGS:
                    self.assertFalse(mount.get("readOnly", False),
                                     f"--{flag}={path} is on a read-only mount")
                self.o.volume(workload, mount["name"])  # the volume exists
            self.assertIsNotNone(mount_for(container, "/tmp"))

    def test_database_and_artifacts_are_on_the_persistent_volume(self):
        self.assertNotIn("replicas", self.worker["spec"],
                         "the autoscaler owns the worker count")
        self.assertEqual(self.lorad["spec"]["replicas"], 1,
                         "SQLite is the source of truth: exactly one lorad")
        claims = {c["metadata"]["name"] for c in self.lorad["spec"]["volumeClaimTemplates"]}
        for flag in ("db", "artifact_root"):
            mount = mount_for(self.lorad_container, self.lorad_flags[flag])
            self.assertIn(mount["name"], claims, f"--{flag} is not on the PVC")

    def test_tokens_reach_lorad_as_a_private_file(self):
        # The init container copies the Secret's tokens key to the file
        # --tokens_file names, mode 0600, on a volume lorad mounts.
        spec = self.lorad["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        command = init["command"]
        self.assertEqual(command[:3], ["install", "-m", "0600"])
        source, target = command[3], command[4]
        self.assertEqual(target, self.lorad_flags["tokens_file"])
        source_mount = mount_for(init, source)
        secret_volume = self.o.volume(self.lorad, source_mount["name"])["secret"]
        self.assertEqual(secret_volume["secretName"], self.o.secret["metadata"]["name"])
        items = {i["path"]: i["key"] for i in secret_volume["items"]}
        self.assertEqual(items[os.path.basename(source)], "tokens")
        self.assertEqual(mount_for(init, target)["name"],
                         mount_for(self.lorad_container, target)["name"])
        # The tokens key holds lorad's format: '<role> <token> <name>'.
        text = base64.b64decode(self.o.secret["data"]["tokens"]).decode()
        roles = {line.split()[0] for line in text.splitlines()}
        self.assertEqual(roles, {"admin", "client", "worker"})

    def test_referenced_secrets_and_config_maps_exist(self):
        secrets = dict(self.o.by_kind.get("Secret", {}))
        secrets[self.o.secret["metadata"]["name"]] = self.o.secret
        config_maps = self.o.by_kind.get("ConfigMap", {})
        checked = 0
        for workload in self.o.workloads():
            for volume in workload["spec"]["template"]["spec"].get("volumes", []):
                if "secret" in volume:
                    secret = secrets.get(volume["secret"]["secretName"])
                    self.assertIsNotNone(secret, volume)
                    for item in volume["secret"].get("items", []):
                        self.assertIn(item["key"], secret["data"])
                    checked += 1
                if "configMap" in volume:
                    self.assertIn(volume["configMap"]["name"], config_maps)
                    checked += 1
        self.assertGreaterEqual(checked, 4)
        # The Secret is not part of the overlay (applying the overlay would
        # replace live tokens), and make-secret.sh writes its namespace.
        self.assertNotIn("Secret", self.o.by_kind)
        self.assertEqual(self.o.secret["metadata"]["namespace"],
                         self.lorad["metadata"]["namespace"])

    def test_resources_requests_and_limits_are_set(self):
        for workload, container in self.containers():
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    self.assertIn(resource, resources.get(part, {}),
                                  f"{workload['metadata']['name']}/{container['name']}: "
                                  f"no {part}.{resource}")

    def test_pods_run_as_non_root(self):
        for workload in self.o.workloads():
            context = workload["spec"]["template"]["spec"]["securityContext"]
            self.assertTrue(context["runAsNonRoot"])
            self.assertNotEqual(context["runAsUser"], 0)
        for _, container in self.containers():
            self.assertFalse(container["securityContext"]["allowPrivilegeEscalation"])

    def test_worker_grace_period_covers_checkpoint_and_upload(self):
        stop_grace = lib.parse_duration_seconds(self.worker_flags["stop_grace"])
        grace = self.worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertGreater(grace, stop_grace + UPLOAD_ALLOWANCE_SECONDS,
                           f"terminationGracePeriodSeconds {grace} does not cover "
                           f"--stop_grace {stop_grace}s plus the upload")

    def test_network_policy_lets_workers_and_clients_reach_grpc_only(self):
        policy = self.o.one("NetworkPolicy", "lorad-ingress")
        lorad_labels = self.lorad["spec"]["template"]["metadata"]["labels"]
        worker_labels = self.worker["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selects(policy["spec"]["podSelector"], lorad_labels))
        self.assertEqual(policy["spec"]["policyTypes"], ["Ingress"])
        rules = {tuple(p["port"] for p in rule["ports"]): rule
                 for rule in policy["spec"]["ingress"]}
        self.assertEqual(set(rules), {("grpc",), ("metrics",)})
        grpc_sources = rules[("grpc",)]["from"]
        self.assertTrue(any("podSelector" in s and selects(s["podSelector"], worker_labels)
                            for s in grpc_sources), "workers cannot reach lorad")
        for source in grpc_sources:
            self.assertTrue(source.get("podSelector") or source.get("namespaceSelector"),
                            "an empty source would admit everyone")
            self.assertFalse(selects(source.get("podSelector", {"matchLabels": {"x": "y"}}),
                                     {"app.kubernetes.io/name": "something-else"}))
        worker_policy = self.o.one("NetworkPolicy", "lora-worker-ingress")
        self.assertTrue(selects(worker_policy["spec"]["podSelector"], worker_labels))

    def test_monitors_select_the_metrics_ports(self):
        service_monitor = self.o.one("ServiceMonitor", "lorad")
        selected = [s for s in self.o.by_kind["Service"].values()
                    if selects(service_monitor["spec"]["selector"], s["metadata"]["labels"])]
        self.assertEqual([s["metadata"]["name"] for s in selected], ["lorad"])
        service_ports = {p["name"] for p in selected[0]["spec"]["ports"]}
        for endpoint in service_monitor["spec"]["endpoints"]:
            self.assertIn(endpoint["port"], service_ports)
            self.assertEqual(endpoint["path"], "/metrics")
        pod_monitor = self.o.one("PodMonitor", "lora-worker")
        worker_labels = self.worker["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selects(pod_monitor["spec"]["selector"], worker_labels))
        worker_ports = {p["name"] for p in self.worker_container["ports"]}
        for endpoint in pod_monitor["spec"]["podMetricsEndpoints"]:
            self.assertIn(endpoint["port"], worker_ports)
        # job = app name, as the alert rules expect (job="lorad", "lora-worker").
        self.assertEqual(service_monitor["spec"]["jobLabel"], "app.kubernetes.io/name")
        self.assertEqual(selected[0]["metadata"]["labels"]["app.kubernetes.io/name"], "lorad")
        self.assertEqual(worker_labels["app.kubernetes.io/name"], "lora-worker")
        with open("deploy/prometheus/alerts.yml") as f:
            alerts = f.read()
        self.assertIn('job="lorad"', alerts)
        self.assertIn('job="lora-worker"', alerts)

    def test_disruption_budget_covers_the_workers(self):
        budget = self.o.one("PodDisruptionBudget", "lora-worker")
        self.assertTrue(selects(budget["spec"]["selector"],
                                self.worker["spec"]["template"]["metadata"]["labels"]))
        self.assertEqual(budget["spec"]["maxUnavailable"], 1)

    def test_autoscaler_targets_workers_on_exported_metrics(self):
        scaled = self.o.one("ScaledObject", "lora-worker")
        target = scaled["spec"]["scaleTargetRef"]
        self.assertEqual((target["kind"], target["name"]), ("Deployment", "lora-worker"))
        self.assertLessEqual(scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"])
        (trigger,) = scaled["spec"]["triggers"]
        self.assertEqual(trigger["type"], "prometheus")
        query = trigger["metadata"]["query"]
        with open("coordinator/coordinator_metrics.cc") as f:
            exported = set(re.findall(r'"(lora_[a-z_]+)"', f.read()))
        for metric in re.findall(r"\b(lora_[a-z_]+)\b", query):
            self.assertIn(metric, exported, f"{query}: {metric} is not exported")
        states = re.search(r'state=~"([A-Z|]+)"', query).group(1).split("|")
        self.assertEqual(set(states), {"PENDING", "LEASED", "RUNNING"})
        self.assertIn(f'namespace="{self.worker["metadata"]["namespace"]}"', query)
        # One worker per threshold runs: the threshold is --max_jobs.
        self.assertEqual(float(trigger["metadata"]["threshold"]),
                         float(self.worker_flags["max_jobs"]))

    def test_images_are_the_dockerfile_targets(self):
        with open("deploy/docker/Dockerfile") as f:
            stages = set(re.findall(r"^FROM \S+ AS (\S+)$", f.read(), re.M))
        for _, container in self.containers():
            name = image_name(container)
            self.assertTrue(name.startswith("lora-sweep/"), name)
            self.assertIn(name.split("/", 1)[1], stages)


class CpuOverlayTest(ManifestChecks, unittest.TestCase):
    OVERLAY = "cpu"

    def test_no_gpus_on_cpu_workers(self):
        resources = self.worker_container["resources"]
        self.assertNotIn("nvidia.com/gpu", resources["limits"])
        self.assertEqual(self.worker_flags["device"], "cpu")
        self.assertEqual(image_name(self.worker_container), "lora-sweep/worker-cpu")
        self.assertEqual(self.worker["spec"]["template"]["metadata"]["labels"]
                         ["lora-sweep/pool"], "cpu")


class GpuOverlayTest(ManifestChecks, unittest.TestCase):
    OVERLAY = "gpu"

    def test_workers_request_gpus_on_gpu_nodes(self):
        spec = self.worker["spec"]["template"]["spec"]
        resources = self.worker_container["resources"]
        self.assertGreaterEqual(int(resources["limits"]["nvidia.com/gpu"]), 1)
        self.assertEqual(resources["requests"]["nvidia.com/gpu"],
                         resources["limits"]["nvidia.com/gpu"])
        self.assertEqual(spec["nodeSelector"], {"nvidia.com/gpu.present": "true"})
        self.assertTrue(any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule"
                            for t in spec["tolerations"]))
        self.assertTrue(self.worker_flags["device"].startswith("cuda"))
        self.assertIn("pool=gpu", self.worker_flags["labels"])
        self.assertEqual(image_name(self.worker_container), "lora-sweep/worker-cuda")
        self.assertEqual(self.worker["spec"]["template"]["metadata"]["labels"]
                         ["lora-sweep/pool"], "gpu")
        # The coordinator is the same as on CPU: no GPU for it.
        self.assertNotIn("nvidia.com/gpu", self.lorad_container["resources"]["limits"])


class LiveProbesTest(unittest.TestCase):
    """The daemons, started with the CPU overlay's rendered flag files
    (paths moved under a scratch folder, listen addresses to 127.0.0.1 on
    free ports), answer the probes the manifests define."""

    def test_daemons_answer_the_manifests_probes(self):
        o = overlay("cpu")
        lorad = o.one("StatefulSet", "lorad")
        worker = o.one("Deployment", "lora-worker")
        lorad_container = lorad["spec"]["template"]["spec"]["containers"][0]
        worker_container = worker["spec"]["template"]["spec"]["containers"][0]
        scratch = lib.scratch_dir("k8s-live-")
        secrets = os.path.join(scratch, "secrets")
        lib.make_tokens(secrets)
        grpc_port, lorad_http, worker_http = lib.free_port(), lib.free_port(), lib.free_port()
        moved = {}

        def relocate(flags, container):
            """Flag lines for a local run: paths under scratch, 127.0.0.1."""
            lines = []
            for name, value in flags:
                if name in PATH_FLAGS:
                    value = moved.setdefault(value, scratch + value)
                    os.makedirs(os.path.dirname(value) if PATH_FLAGS[name] == "file"
                                else value, exist_ok=True)
                elif name == "listen":
                    value = f"127.0.0.1:{grpc_port}"
                elif name == "http":
                    value = f"127.0.0.1:{lorad_http if container is lorad_container else worker_http}"
                elif name == "coordinator":
                    value = f"127.0.0.1:{grpc_port}"
                lines.append(f"--{name}={value}")
            return lines

        lorad_flags = relocate(o.container_flags(lorad, lorad_container), lorad_container)
        worker_flags = relocate(o.container_flags(worker, worker_container), worker_container)
        # What the init container and the secret mount put in place.
        tokens_file = moved[dict(o.container_flags(lorad, lorad_container))["tokens_file"]]
        shutil.copy(os.path.join(secrets, "tokens"), tokens_file)
        os.chmod(tokens_file, 0o600)
        worker_token = moved[dict(o.container_flags(worker, worker_container))["token_file"]]
        shutil.copy(os.path.join(secrets, "worker-token"), worker_token)

        lorad_flagfile = os.path.join(scratch, "lorad.flags")
        with open(lorad_flagfile, "w") as f:
            f.write("\n".join(lorad_flags) + "\n")
        worker_flagfile = os.path.join(scratch, "worker.flags")
        with open(worker_flagfile, "w") as f:
            f.write("\n".join(worker_flags) + "\n")

        # The worker first, with no coordinator yet: alive, not ready.
        worker_daemon = lib.Daemon([lib.LORA_WORKER, f"--flagfile={worker_flagfile}"],
                                   os.path.join(scratch, "worker.log"))
        lorad_daemon = None
        try:
            liveness = worker_container["livenessProbe"]["httpGet"]["path"]
            readiness = worker_container["readinessProbe"]["httpGet"]["path"]
            lib.wait_for(lambda: lib.http_status(worker_http, liveness) == 200,
                         "worker liveness", process=worker_daemon.process)
            self.assertEqual(lib.http_status(worker_http, readiness), 503,
                             "a worker with no coordinator must not be ready")

            lorad_daemon = lib.Daemon([lib.LORAD, f"--flagfile={lorad_flagfile}"],
                                      os.path.join(scratch, "lorad.log"))
            lib.wait_for(lambda: lib.grpc_health_serving(grpc_port),
                         "lorad gRPC health (startup and liveness probes)",
                         process=lorad_daemon.process)
            lorad_ready = lorad_container["readinessProbe"]["httpGet"]["path"]
            lib.wait_for(lambda: lib.http_status(lorad_http, lorad_ready) == 200,
                         "lorad readiness", process=lorad_daemon.process)
            # The worker registers with the worker token and becomes ready.
            lib.wait_for(lambda: lib.http_status(worker_http, readiness) == 200,
                         "worker readiness after registering", timeout=60,
                         process=worker_daemon.process)
            self.assertTrue(os.path.exists(moved[dict(
                o.container_flags(lorad, lorad_container))["db"]]))

            # Coordinator gone: the worker stays alive but turns unready.
            self.assertEqual(lorad_daemon.close(), 0, lorad_daemon.describe())
            lorad_daemon = None
            lib.wait_for(lambda: lib.http_status(worker_http, readiness) == 503,
                         "worker unready without its coordinator", timeout=60,
                         process=worker_daemon.process)
            self.assertEqual(lib.http_status(worker_http, liveness), 200)
        except AssertionError as error:
            logs = worker_daemon.describe()
            if lorad_daemon is not None:
                logs += "\n" + lorad_daemon.describe()
            raise AssertionError(f"{error}\n{logs}") from None
        finally:
            if lorad_daemon is not None:
                lorad_daemon.close()
            # SIGTERM drains; with no jobs the worker exits at once, cleanly.
            self.assertEqual(worker_daemon.close(), 0, worker_daemon.describe())


if __name__ == "__main__":
    unittest.main(verbosity=2)
