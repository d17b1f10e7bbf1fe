#!/usr/bin/env python3
"""Checks deploy/docker/Dockerfile and runs the scripts it puts in images.

Run from a Bazel runfiles root (the built daemons at their workspace
paths):
  python3 tests/deploy/dockerfile_test.py --binary=//coordinator:lorad=coordinator/lorad ...

No Docker engine runs on the development machines, so the images are not
built; instead:
- every file a COPY names exists in the repository; .dockerignore keeps
  Bazel's output links and local runs out of the context;
- the build stages install packages only through scripts/setup.sh (which
  reads scripts/debian-packages.txt) and the runtime stages only the list
  deploy/docker/runtime-packages.sh derives from the built binaries; the
  Bazel targets built and the bazel-bin paths copied are the real ones;
- each image's final stage runs as uid 10001, carries a HEALTHCHECK on the
  port its daemon serves HTTP on, and its ENTRYPOINT/CMD flags are real
  flags of that daemon;
- runtime-packages.sh on the real binaries: no LibTorch for the
  coordinator, LibTorch and OpenBLAS for the worker, every package one
  this machine has installed;
- healthcheck.sh against a real lorad: 0 on /healthz, non-zero on a
  missing path or a closed port; make-tokens.sh: files mode 0600 that a
  real lorad accepts, kept on a second run.
"""
import os
import re
import shlex
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testlib as lib  # noqa: E402

DOCKERFILE = "deploy/docker/Dockerfile"
RUNTIME_PACKAGES = "deploy/docker/runtime-packages.sh"
HEALTHCHECK = "deploy/docker/healthcheck.sh"
# Bazel label -> runfiles path, from --binary=LABEL=PATH arguments.
BINARIES = {}
FINAL_STAGES = {"coordinator": lib.LORAD, "worker-cpu": lib.LORA_WORKER,
                "worker-cuda": lib.LORA_WORKER}


def instructions(path):
    """[(stage, keyword, text)] with continuation lines joined."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    result, stage = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\bAS (\S+)$", rest)
            stage = match.group(1) if match else None
        result.append((stage, keyword, rest.strip()))
    return result


def stage_chain(parsed, stage):
    """The stage and the stages it is built FROM, innermost last."""
    bases = {}
    for name, keyword, rest in parsed:
        if keyword == "FROM":
            bases[name] = rest.split()[0]
    chain = [stage]
    while bases.get(chain[-1]) in bases:
        chain.append(bases[chain[-1]])
    return chain


def json_list(text):
    import json
    return json.loads(text)


class DockerfileTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.parsed = instructions(DOCKERFILE)
        cls.stages = [s for s, k, _ in cls.parsed if k == "FROM"]

    def of_stage(self, stage, keyword):
        return [rest for s, k, rest in self.parsed if s == stage and k == keyword]

    def inherited(self, stage, keyword):
        """The last `keyword` along the stage's FROM chain (USER, CMD...)."""
        for name in stage_chain(self.parsed, stage):
            found = self.of_stage(name, keyword)
            if found:
                return found[-1]
        return None

    def test_three_image_targets(self):
        for stage in FINAL_STAGES:
            self.assertIn(stage, self.stages)

    def test_copied_files_exist(self):
        copies = 0
        for stage, keyword, rest in self.parsed:
            if keyword not in ("COPY", "ADD") or "--from=" in rest:
                continue
            words = shlex.split(rest)
            sources = [w for w in words[:-1] if not w.startswith("--")]
            self.assertTrue(sources, rest)
            for source in sources:
                if source.startswith(("http://", "https://", "${")):
                    continue
                self.assertTrue(os.path.exists(source),
                                f"{DOCKERFILE} ({stage}): {keyword} {source}: no such file")
                copies += 1
        self.assertGreaterEqual(copies, 5)

    def test_dockerignore_keeps_outputs_out_of_the_context(self):
        with open(".dockerignore") as f:
            patterns = {line.strip() for line in f if line.strip() and not line.startswith("#")}
        for pattern in ("bazel-*", "runs/", ".git"):
            self.assertIn(pattern, patterns)

    def test_packages_come_from_the_one_list(self):
        with open("scripts/setup.sh") as f:
            setup = f.read()
        self.assertIn('package_list="$repo_root/scripts/debian-packages.txt"', setup)
        base_copies = " ".join(self.of_stage("build-base", "COPY"))
        self.assertIn("scripts/setup.sh", base_copies)
        self.assertIn("scripts/debian-packages.txt", base_copies)
        installs = 0
        for stage, keyword, rest in self.parsed:
            if keyword != "RUN":
                continue
            for command in re.split(r"&&|;", rest):
                command = command.strip()
                if "apt-get install" in command or "apt install" in command:
                    # Only the derived runtime list, never packages by name.
                    self.assertRegex(command,
                                     r"^xargs -a /tmp/runtime-packages\.txt apt-get install "
                                     r"-y -q --no-install-recommends$", f"{stage}: {command}")
                    installs += 1
                if "setup.sh" in command:
                    self.assertRegex(command, r"^scripts/setup\.sh( --packages-only)?$")
        self.assertEqual(installs, 2)  # coordinator and worker-cpu
        # Each runtime list is written by runtime-packages.sh in its build stage.
        for build in ("build-coordinator", "build-worker"):
            run = " ".join(self.of_stage(build, "RUN"))
            self.assertIn(f"{RUNTIME_PACKAGES} ", run)
            self.assertIn("> /out/runtime-packages.txt", run)
        # The worker's build stage fetches the assets (setup.sh without
        # --packages-only); the coordinator's does not need them.
        worker_build = " ".join(" ".join(self.of_stage("build-worker", "RUN")).split())
        self.assertIn("scripts/setup.sh && bazel build", worker_build)

    def test_bazel_targets_and_copied_outputs_are_real(self):
        built = set()
        for stage, keyword, rest in self.parsed:
            if keyword != "RUN" or "bazel build" not in rest:
                continue
            (command,) = [c for c in rest.split("&&") if "bazel build" in c]
            targets = [w for w in command.split()[2:] if w.startswith("//")]
            self.assertTrue(targets, rest)
            for target in targets:
                self.assertIn(target, BINARIES, f"{stage}: {target} is not a known binary")
                built.add(target)
                self.assertIn(f"bazel-bin/{BINARIES[target]}", rest,
                              f"{stage} builds {target} but does not copy it")
        self.assertEqual(built, set(BINARIES))

    def test_final_stages_run_unprivileged_with_health_checks(self):
        users = " ".join(self.of_stage("runtime-base", "RUN"))
        uid = re.search(r"useradd .*--uid (\d+)", users).group(1)
        for stage, daemon in FINAL_STAGES.items():
            self.assertEqual(self.inherited(stage, "USER"), f"{uid}:{uid}", stage)
            self.assertNotEqual(uid, "0")
            health = self.inherited(stage, "HEALTHCHECK")
            self.assertIsNotNone(health, f"{stage} has no HEALTHCHECK")
            probe = json_list(health.split("CMD", 1)[1].strip())
            self.assertEqual(probe[0], os.path.basename(HEALTHCHECK))
            entrypoint = json_list(self.inherited(stage, "ENTRYPOINT"))
            self.assertEqual(entrypoint, [os.path.basename(daemon)])
            flags = dict(lib.parse_flag_lines(json_list(self.inherited(stage, "CMD")),
                                              f"{DOCKERFILE} {stage} CMD"))
            known = lib.daemon_flags(daemon)
            for name in flags:
                self.assertIn(name, known, f"{stage}: --{name}")
            http_port = lib.port_of(flags["http"])
            self.assertEqual(int(probe[1]), http_port, f"{stage}: health check port")
            exposed = " ".join(self.of_stage(stage, "EXPOSE")
                               or self.of_stage(stage_chain(self.parsed, stage)[1], "EXPOSE"))
            self.assertIn(str(http_port), exposed.split())
            self.assertTrue(flags["http"].startswith("0.0.0.0:"))

    def test_cuda_image_documents_its_libtorch(self):
        arguments = {rest.split("=")[0] for s, k, rest in self.parsed if k == "ARG"}
        for name in ("LIBTORCH_VERSION", "LIBTORCH_CUDA", "LIBTORCH_URL", "LIBTORCH_HOME"):
            self.assertIn(name, arguments)
        with open(DOCKERFILE) as f:
            text = " ".join(f.read().replace("#", " ").split())
        self.assertIn("cxx11-abi", text)
        # Says plainly which code the CUDA image runs until the GPU issue.
        self.assertIn("the binaries in this image are the CPU build", text)


class RuntimePackagesTest(unittest.TestCase):

    def packages(self, *labels):
        result = subprocess.run([RUNTIME_PACKAGES] + [BINARIES[l] for l in labels],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.split()

    def assert_installed_here(self, packages):
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n"]
                                + packages, capture_output=True, text=True)
        for line in result.stdout.splitlines():
            self.assertTrue(line.endswith("install ok installed"), line)
        self.assertEqual(len(result.stdout.splitlines()), len(packages))

    def test_coordinator_image_has_no_libtorch(self):
        packages = self.packages("//coordinator:lorad", "//loractl:loractl")
        self.assertFalse([p for p in packages if "torch" in p], packages)
        for needed in ("libgrpc++1.51", "libsqlite3-0", "libstdc++6"):
            self.assertIn(needed, packages)
        self.assertEqual(packages, sorted(set(packages)))
        self.assert_installed_here(packages)

    def test_worker_image_gets_libtorch_and_openblas(self):
        packages = self.packages("//worker:lora-worker", "//lora_core:lora-train")
        self.assertTrue([p for p in packages if p.startswith("libtorch")], packages)
        self.assertIn("libopenblas0-openmp", packages)
        self.assertFalse([p for p in packages if p.endswith("-dev")], packages)
        self.assert_installed_here(packages)

    def test_unknown_file_fails_with_its_name(self):
        result = subprocess.run([RUNTIME_PACKAGES, "no/such/binary"],
                                capture_output=True, text=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no/such/binary", result.stderr)


class ImageScriptsTest(unittest.TestCase):
    """healthcheck.sh and make-tokens.sh against a real lorad."""

    def test_tokens_and_health_check_with_a_real_lorad(self):
        scratch = lib.scratch_dir("image-scripts-")
        secrets = os.path.join(scratch, "secrets")
        files = lib.make_tokens(secrets)
        self.assertEqual(files, ["admin-token", "client-token", "loractl.yaml",
                                 "tokens", "worker-token"])
        for name in files:
            mode = stat.S_IMODE(os.stat(os.path.join(secrets, name)).st_mode)
            self.assertEqual(mode, 0o600, name)
        with open(os.path.join(secrets, "tokens")) as f:
            before = f.read()
        lib.make_tokens(secrets)  # a second run keeps the tokens
        with open(os.path.join(secrets, "tokens")) as f:
            self.assertEqual(f.read(), before)
        with open(os.path.join(secrets, "client-token")) as f:
            client = f.read().strip()
        self.assertRegex(client, r"^[0-9a-f]{64}$")
        self.assertIn(f"client {client} client", before)
        with open(os.path.join(secrets, "loractl.yaml")) as f:
            self.assertIn(f"token: {client}", f.read())

        http = lib.free_port()
        lorad = lib.Daemon([lib.LORAD, "--listen=127.0.0.1:0", f"--http=127.0.0.1:{http}",
                            "--db=:memory:", f"--artifact_root={scratch}/artifacts",
                            f"--tokens_file={secrets}/tokens"],
                           os.path.join(scratch, "lorad.log"))
        try:
            lib.wait_for(lambda: lib.http_status(http, "/healthz") == 200,
                         "lorad /healthz", process=lorad.process)

            def check(*args):
                return subprocess.run([HEALTHCHECK, *args], capture_output=True,
                                      timeout=30).returncode

            self.assertEqual(check(str(http)), 0)
            self.assertEqual(check(str(http), "/readyz"), 0)
            self.assertNotEqual(check(str(http), "/no-such-page"), 0)
            self.assertNotEqual(check(str(lib.free_port())), 0)
            # The tokens file was accepted: lorad logs no tokens error and runs.
            self.assertIsNone(lorad.process.poll(), lorad.describe())
        finally:
            self.assertEqual(lorad.close(), 0, lorad.describe())


def main():
    remaining = [sys.argv[0]]
    for arg in sys.argv[1:]:
        if arg.startswith("--binary="):
            label, path = arg[len("--binary="):].split("=", 1)
            BINARIES[label] = path
        else:
            remaining.append(arg)
    if not BINARIES:
        sys.exit("usage: dockerfile_test.py --binary=//pkg:target=path ...")
    unittest.main(argv=remaining, verbosity=2)


if __name__ == "__main__":
    main()
