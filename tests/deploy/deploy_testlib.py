"""Helpers shared by the deployment tests (tests/deploy/*_test.py).

Run from the repository root or a Bazel runfiles root: paths are relative
to the working directory. Standard library plus PyYAML (python3-yaml, a
dependency of Debian's python3-torch).
"""
import functools
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import yaml

LORAD = "coordinator/lorad"
LORA_WORKER = "worker/lora-worker"
MAKE_TOKENS = "deploy/docker/make-tokens.sh"

_FLAG_LINE = re.compile(r"^\s+--([A-Za-z0-9_]+) \(")


@functools.lru_cache(maxsize=None)
def daemon_flags(binary):
    """The flag names `binary --helpfull` documents (absl's built-ins too);
    run once per binary and test process."""
    result = subprocess.run([binary, "--helpfull"], capture_output=True,
                            text=True, timeout=60)
    names = set()
    for line in (result.stdout + result.stderr).splitlines():
        match = _FLAG_LINE.match(line)
        if match:
            names.add(match.group(1))
    if not names:
        raise AssertionError(f"{binary} --helpfull listed no flags:\n"
                             f"{result.stdout}{result.stderr}")
    return names


def parse_flag_lines(lines, where):
    """[(name, value)] from `--name=value` arguments or flagfile lines.

    Blank lines and '#' comments are skipped; anything else that is not
    `--name` or `--name=value` raises AssertionError naming `where`.
    """
    flags = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"--([A-Za-z0-9_]+)(?:=(.*))?", line)
        if not match:
            raise AssertionError(f"{where}:{number}: not a flag: {line!r}")
        flags.append((match.group(1), match.group(2)))
    return flags


def port_of(address):
    """The port of a host:port address, as an int."""
    return int(address.rsplit(":", 1)[1])


def parse_duration_seconds(text):
    """absl duration text ("60s", "2m", "1h30m", "500ms") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total, pos = 0.0, 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise AssertionError(f"not a duration: {text!r}")
    return total


def load_yaml_documents(text):
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path, timeout=5):
    """HTTP status of GET http://127.0.0.1:port/path, or None if refused."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                    timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return None


def wait_for(predicate, what, timeout=30, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with "
                                 f"{process.returncode}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def grpc_health_serving(port):
    """True when grpc.health.v1.Health/Check on 127.0.0.1:port says SERVING.

    Sends the empty HealthCheckRequest (service "") as raw bytes; SERVING is
    field 1 = 1, i.e. b"\\x08\\x01".
    """
    import grpc  # python3-grpcio

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            return check(b"", timeout=5) == b"\x08\x01"
        except grpc.RpcError:
            return False


def make_tokens(directory):
    """Runs deploy/docker/make-tokens.sh into `directory`; returns its files."""
    subprocess.run([MAKE_TOKENS, directory], check=True, capture_output=True)
    return sorted(os.listdir(directory))


class Daemon:
    """A real daemon child process, stopped with SIGTERM at close()."""

    def __init__(self, argv, log_path):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(argv, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self, timeout=30):
        """SIGTERM, wait; returns the exit code (SIGKILL after timeout)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def describe(self):
        return f"{shlex.join(self.argv)}\n--- log ---\n{self.log()}"


def scratch_dir(prefix):
    root = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()
    return tempfile.mkdtemp(prefix=prefix, dir=root)
