#!/usr/bin/env python3
"""Checks deploy/compose.yaml against the repository and the daemons.

Run from the repository root or a Bazel runfiles root:
  python3 tests/deploy/compose_test.py

No Docker engine runs on the development machines, so the stack is not
started; instead:
- the file parses, every service is complete, every file it references
  (build context, Dockerfile and target, bind mounts) exists in the
  repository and every named volume is declared;
- lorad's and the workers' flags are real flags (`--helpfull`), workers
  dial lorad's service name and gRPC port, Prometheus scrapes exactly
  lorad and the worker services on their --http ports;
- the tokens service writes (deploy/docker/make-tokens.sh, run here) the
  files lorad and the workers read, into the volume they mount;
- Grafana gets the provisioning files and every dashboard at the path the
  provisioning names; Prometheus gets its config and the alert rules;
- workers' stop_grace_period covers --stop_grace plus the upload.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testlib as lib  # noqa: E402

COMPOSE = "deploy/compose.yaml"
COMPOSE_DIR = os.path.dirname(COMPOSE)
UPLOAD_ALLOWANCE_SECONDS = 60


def load_compose():
    with open(COMPOSE) as f:
        (document,) = lib.load_yaml_documents(f.read())
    return document


def dockerfile_stages(path):
    with open(path) as f:
        return set(re.findall(r"^FROM \S+ AS (\S+)$", f.read(), re.M))


def split_volume(entry):
    """(source, target, read_only) of a short-syntax volume entry."""
    parts = entry.split(":")
    return parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")


def is_bind(source):
    return source.startswith((".", "/"))


class ComposeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.compose = load_compose()
        cls.services = cls.compose["services"]
        cls.workers = sorted(name for name, service in cls.services.items()
                             if service.get("image", "").startswith("lora-sweep/worker"))

    def flags(self, service_name):
        return dict(lib.parse_flag_lines(self.services[service_name]["command"],
                                         f"{COMPOSE}: {service_name}.command"))

    def test_two_cpu_workers_and_the_observability_stack(self):
        self.assertEqual(len(self.workers), 2, self.workers)
        for name in ("tokens", "lorad", "prometheus", "grafana"):
            self.assertIn(name, self.services)
        for name in self.workers:
            self.assertEqual(self.services[name]["image"], "lora-sweep/worker-cpu:latest")

    def test_builds_reference_the_dockerfile_and_its_targets(self):
        images = {}
        for name, service in self.services.items():
            if "build" not in service:
                continue
            build = service["build"]
            context = os.path.normpath(os.path.join(COMPOSE_DIR, build["context"]))
            self.assertEqual(context, ".", f"{name}: context must be the repository root")
            dockerfile = os.path.join(context, build["dockerfile"])
            self.assertTrue(os.path.isfile(dockerfile), dockerfile)
            self.assertIn(build["target"], dockerfile_stages(dockerfile), name)
            self.assertEqual(service["image"], f"lora-sweep/{build['target']}:latest")
            images[service["image"]] = name
        # Every lora-sweep image a service runs is built by some service.
        for name, service in self.services.items():
            image = service.get("image", "")
            if image.startswith("lora-sweep/"):
                self.assertIn(image, images, f"{name} runs {image}, which nothing builds")

    def test_bind_mounts_exist_and_named_volumes_are_declared(self):
        declared = set(self.compose.get("volumes", {}))
        used = set()
        binds = 0
        for name, service in self.services.items():
            for entry in service.get("volumes", []):
                source, target, _ = split_volume(entry)
                self.assertTrue(target.startswith("/"), entry)
                if is_bind(source):
                    path = os.path.normpath(os.path.join(COMPOSE_DIR, source))
                    self.assertTrue(os.path.exists(path),
                                    f"{COMPOSE}: {name} mounts {source}, which does not exist")
                    self.assertFalse(path.startswith(".."), f"{source} leaves the repository")
                    binds += 1
                else:
                    self.assertIn(source, declared, f"{name}: volume {source} not declared")
                    used.add(source)
        self.assertEqual(used, declared, "declared volumes nobody mounts")
        self.assertGreaterEqual(binds, 7)

    def test_daemon_flags_are_real_and_workers_find_lorad(self):
        lorad_flags = self.flags("lorad")
        known = lib.daemon_flags(lib.LORAD)
        for name in lorad_flags:
            self.assertIn(name, known, f"lorad --{name}")
        grpc_port = lib.port_of(lorad_flags["listen"])
        known = lib.daemon_flags(lib.LORA_WORKER)
        for worker in self.workers:
            flags = self.flags(worker)
            for name in flags:
                self.assertIn(name, known, f"{worker}: lora-worker --{name}")
            self.assertEqual(flags["coordinator"], f"lorad:{grpc_port}")
        published = {entry.rsplit(":", 1)[1] for entry in self.services["lorad"]["ports"]}
        self.assertIn(str(grpc_port), published)
        self.assertIn(str(lib.port_of(lorad_flags["http"])), published)

    def test_database_and_artifacts_are_on_the_data_volume(self):
        flags = self.flags("lorad")
        mounts = [split_volume(v) for v in self.services["lorad"]["volumes"]]
        for flag in ("db", "artifact_root"):
            path = flags[flag]
            holders = [m for m in mounts if path.startswith(m[1].rstrip("/") + "/")]
            self.assertEqual(len(holders), 1, f"--{flag}={path}")
            source, _, read_only = holders[0]
            self.assertEqual(source, "lora-data")
            self.assertFalse(read_only)

    def test_tokens_service_writes_what_the_daemons_read(self):
        tokens = self.services["tokens"]
        entrypoint = tokens["entrypoint"]
        self.assertEqual(entrypoint[0], os.path.basename(lib.MAKE_TOKENS))
        secrets_dir = entrypoint[1]
        (volume,) = [split_volume(v) for v in tokens["volumes"]]
        self.assertEqual(volume[1], secrets_dir)
        written = lib.make_tokens(os.path.join(lib.scratch_dir("compose-"), "s"))
        readers = {"lorad": self.flags("lorad")["tokens_file"]}
        for worker in self.workers:
            readers[worker] = self.flags(worker)["token_file"]
        for service, path in readers.items():
            self.assertEqual(os.path.dirname(path), secrets_dir, service)
            self.assertIn(os.path.basename(path), written, service)
            mounts = [split_volume(v) for v in self.services[service]["volumes"]]
            self.assertIn((volume[0], secrets_dir, True), mounts,
                          f"{service} must mount {volume[0]} read-only at {secrets_dir}")
        config = self.services["lorad"]["environment"]["LORACTL_CONFIG"]
        self.assertEqual(os.path.dirname(config), secrets_dir)
        self.assertIn(os.path.basename(config), written)
        lorad_depends = self.services["lorad"]["depends_on"]
        self.assertEqual(lorad_depends["tokens"]["condition"],
                         "service_completed_successfully")
        for worker in self.workers:
            self.assertEqual(self.services[worker]["depends_on"]["lorad"]["condition"],
                             "service_healthy")

    def test_prometheus_scrapes_lorad_and_every_worker(self):
        prometheus = self.services["prometheus"]
        mounts = {split_volume(v)[1]: split_volume(v)[0] for v in prometheus["volumes"]}
        config_flag = [c for c in prometheus["command"] if c.startswith("--config.file=")]
        config_path = config_flag[0].split("=", 1)[1]
        config_source = os.path.normpath(os.path.join(COMPOSE_DIR, mounts[config_path]))
        with open(config_source) as f:
            (config,) = lib.load_yaml_documents(f.read())
        for rule_file in config["rule_files"]:
            target = os.path.join(os.path.dirname(config_path), rule_file)
            self.assertIn(target, mounts, f"rule file {rule_file} is not mounted")
            self.assertTrue(os.path.isfile(
                os.path.normpath(os.path.join(COMPOSE_DIR, mounts[target]))))
        targets = {}
        for job in config["scrape_configs"]:
            for static in job["static_configs"]:
                for target in static["targets"]:
                    targets[target] = job["job_name"]
        expected = {f"lorad:{lib.port_of(self.flags('lorad')['http'])}": "lorad"}
        for worker in self.workers:
            expected[f"{worker}:{lib.port_of(self.flags(worker)['http'])}"] = "lora-worker"
            self.assertEqual(self.services[worker]["hostname"], worker)
        self.assertEqual(targets, expected)

    def test_grafana_gets_provisioning_and_every_dashboard(self):
        grafana = self.services["grafana"]
        mounts = {split_volume(v)[1]: split_volume(v)[0] for v in grafana["volumes"]}
        provisioning = "/etc/grafana/provisioning"
        self.assertEqual(
            os.path.normpath(os.path.join(COMPOSE_DIR, mounts[f"{provisioning}/datasources"])),
            "dashboards/provisioning/datasources")
        provider_dir = os.path.normpath(
            os.path.join(COMPOSE_DIR, mounts[f"{provisioning}/dashboards"]))
        with open(os.path.join(provider_dir, "lora-sweep.yaml")) as f:
            (provider,) = lib.load_yaml_documents(f.read())
        path = provider["providers"][0]["options"]["path"]
        dashboards = sorted(f for f in os.listdir("dashboards") if f.endswith(".json"))
        self.assertEqual(len(dashboards), 3)
        for dashboard in dashboards:
            target = f"{path}/{dashboard}"
            self.assertIn(target, mounts, f"{dashboard} is not mounted at {path}")
            self.assertEqual(os.path.normpath(os.path.join(COMPOSE_DIR, mounts[target])),
                             f"dashboards/{dashboard}")
        with open("dashboards/provisioning/datasources/prometheus.yaml") as f:
            (datasources,) = lib.load_yaml_documents(f.read())
        url = datasources["datasources"][0]["url"]
        self.assertEqual(url, "http://prometheus:9090")

    def test_worker_stop_grace_period_covers_checkpoint_and_upload(self):
        for worker in self.workers:
            stop_grace = lib.parse_duration_seconds(self.flags(worker)["stop_grace"])
            period = lib.parse_duration_seconds(self.services[worker]["stop_grace_period"])
            self.assertGreater(period, stop_grace + UPLOAD_ALLOWANCE_SECONDS, worker)


if __name__ == "__main__":
    unittest.main(verbosity=2)
