#!/usr/bin/env python3
"""Checks the Grafana dashboards in dashboards/ (standard library only).

Run from the repository root (or a Bazel runfiles root):
  python3 tests/dashboards/dashboards_test.py

- JSON structure, fixed and unique uids, unique panel ids, grid in 24 columns;
- every panel, target and query variable uses the ${datasource} variable;
- every $var used anywhere is a defined template variable (or a Grafana
  built-in $__*);
- every metric name in a PromQL expression is one the code exports: the
  families registered in coordinator/coordinator_metrics.cc and
  worker/worker_main.cc (histograms with _bucket/_sum/_count), plus `up`;
- the issue's panels are there (each dashboard covers its families), the
  text panel points at `loractl results` / `loractl plot`;
- dashboards/*.json are what dashboards/generate.py writes;
- the alert rules (deploy/prometheus/alerts.yml) use exported metrics too;
- the provisioning YAML names the datasource and the dashboards' folder.
"""
import json
import os
import re
import subprocess
import sys
import unittest

ROOT = os.environ.get("DASHBOARDS_TEST_ROOT", os.getcwd())
DASH_DIR = os.path.join(ROOT, "dashboards")
DASHBOARD_FILES = ["sweep-overview.json", "rank-ablation.json", "workers.json"]
DS = {"type": "prometheus", "uid": "${datasource}"}
METRIC_SOURCES = ["coordinator/coordinator_metrics.cc", "worker/worker_main.cc"]
# Series Prometheus itself writes for every target.
PROMETHEUS_BUILTINS = {"up"}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and",
    "or", "unless", "bool", "offset", "inf", "nan",
}


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def exported_metrics():
    names = set()
    for rel in METRIC_SOURCES:
        src = read(rel)
        for kind, name in re.findall(
                r'Add(Gauge|Counter|Histogram|CallbackGauge)\(\s*"(\w+)"', src):
            names.add(name)
            if kind == "Histogram":
                names.update(name + s for s in ("_bucket", "_sum", "_count"))
    return names


def documented_coordinator_metrics():
    header = read("coordinator/coordinator_metrics.h")
    return set(re.findall(r"^//\s+(lora_\w+)", header, re.M))


def metric_names(expr):
    """Metric names in a PromQL expression (or a label_values() query)."""
    m = re.match(r"\s*label_values\(\s*(.*)\)\s*$", expr, re.S)
    if m:
        inner = m.group(1)
        if "," in inner:
            inner = inner.rsplit(",", 1)[0]
        else:
            return set()  # label_values(label): no metric
        expr = inner
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)         # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)                       # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                      # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
               " ", e)
    names = set()
    for tok in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = tok.group(0)
        rest = e[tok.end():].lstrip()
        if rest.startswith("("):
            continue  # function or aggregation
        if word.lower() in PROMQL_WORDS or word.startswith("$"):
            continue
        start = tok.start()
        if start > 0 and (e[start - 1] == "$" or e[start - 1].isdigit()
                          or e[start - 1] == "."):
            continue  # $__rate_interval, 1e3, 0.5
        names.add(word)
    return names


def alert_expressions(text):
    """The expr: values of a rules file (inline or block scalars)."""
    exprs, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        if m.group(2) not in ("|", ">", "|-", ">-"):
            exprs.append(m.group(2))
            continue
        indent, body = len(m.group(1)), []
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        exprs.append("\n".join(body))
    return exprs


def walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)


def variables_used(s):
    out = set()
    for m in re.finditer(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]", s):
        out.add(m.group(1) or m.group(2) or m.group(3))
    return {v for v in out if not v.startswith("__")}


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        for sub in p.get("panels", []):  # collapsed rows
            yield sub


def expressions(dash):
    for p in all_panels(dash):
        for t in p.get("targets", []):
            yield "panel %r" % p.get("title"), t["expr"]
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]
            yield "variable %r" % v["name"], q["query"] if isinstance(q, dict) else q


class DashboardsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dashboards = {}
        for name in DASHBOARD_FILES:
            with open(os.path.join(DASH_DIR, name), encoding="utf-8") as f:
                cls.dashboards[name] = json.load(f)
        cls.exported = exported_metrics()

    def test_exported_metrics_found(self):
        # The grep must see what the header documents, or it is broken.
        documented = documented_coordinator_metrics()
        self.assertGreaterEqual(len(documented), 11)
        self.assertLessEqual(documented, self.exported)
        for name in ("lora_worker_jobs_running", "lora_worker_step_seconds",
                     "lora_worker_child_exits_total",
                     "lora_worker_tokens_per_second",
                     "lora_worker_artifact_download_bytes_total",
                     "lora_worker_artifact_upload_bytes_total"):
            self.assertIn(name, self.exported)

    def test_structure(self):
        for name, d in self.dashboards.items():
            with self.subTest(dashboard=name):
                for key in ("uid", "title", "panels", "templating",
                            "schemaVersion", "time"):
                    self.assertIn(key, d)
                self.assertRegex(d["uid"], r"^[A-Za-z0-9_-]{1,40}$")
                self.assertIsInstance(d["panels"], list)
                self.assertTrue(d["panels"])
                ids = [p["id"] for p in all_panels(d)]
                self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
                for p in all_panels(d):
                    self.assertIn("type", p)
                    self.assertTrue(p.get("title"), p)
                    g = p["gridPos"]
                    self.assertGreater(g["w"], 0)
                    self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
                    if p["type"] != "text":
                        self.assertTrue(p.get("targets"), p["title"])
                    refs = [t["refId"] for t in p.get("targets", [])]
                    self.assertEqual(len(refs), len(set(refs)), p["title"])

    def test_unique_uids(self):
        uids = [d["uid"] for d in self.dashboards.values()]
        self.assertEqual(len(uids), len(set(uids)))
        titles = [d["title"] for d in self.dashboards.values()]
        self.assertEqual(len(titles), len(set(titles)))

    def test_datasource_is_the_variable(self):
        for name, d in self.dashboards.items():
            with self.subTest(dashboard=name):
                variables = {v["name"]: v for v in d["templating"]["list"]}
                ds = variables.get("datasource")
                self.assertIsNotNone(ds, "no datasource variable")
                self.assertEqual(ds["type"], "datasource")
                self.assertEqual(ds["query"], "prometheus")
                for p in all_panels(d):
                    self.assertEqual(p.get("datasource"), DS, p["title"])
                    for t in p.get("targets", []):
                        self.assertEqual(t.get("datasource"), DS, p["title"])
                for v in variables.values():
                    if v["type"] == "query":
                        self.assertEqual(v.get("datasource"), DS, v["name"])

    def test_template_variables_resolve(self):
        for name, d in self.dashboards.items():
            with self.subTest(dashboard=name):
                defined = [v["name"] for v in d["templating"]["list"]]
                self.assertEqual(len(defined), len(set(defined)))
                used = set()
                for s in walk_strings(d):
                    used |= variables_used(s)
                self.assertLessEqual(used, set(defined),
                                     "undefined: %s" % (used - set(defined)))
                # A variable's query only refers to variables before it.
                seen = set()
                for v in d["templating"]["list"]:
                    for s in walk_strings(v):
                        self.assertLessEqual(variables_used(s), seen, v["name"])
                    seen.add(v["name"])

    def test_sweep_model_rank_variables(self):
        d = self.dashboards["rank-ablation.json"]
        names = [v["name"] for v in d["templating"]["list"]]
        self.assertEqual(names[:4], ["datasource", "sweep", "model", "rank"])
        self.assertIn("sweep", [v["name"] for v in
                                self.dashboards["sweep-overview.json"]
                                ["templating"]["list"]])

    def test_metric_names_are_exported(self):
        allowed = self.exported | PROMETHEUS_BUILTINS
        for name, d in self.dashboards.items():
            for where, expr in expressions(d):
                with self.subTest(dashboard=name, where=where, expr=expr):
                    names = metric_names(expr)
                    self.assertTrue(names, "no metric in %r" % expr)
                    self.assertLessEqual(names, allowed,
                                         "not exported: %s" % (names - allowed))

    def test_metric_name_parser(self):
        self.assertEqual(metric_names(
            'histogram_quantile(0.99, sum by (le, op) (rate('
            'lora_store_transaction_seconds_bucket{op="a"}[$__rate_interval])))'),
            {"lora_store_transaction_seconds_bucket"})
        self.assertEqual(metric_names(
            'label_values(lora_sweep_best_metric{sweep=~"$sweep"}, model)'),
            {"lora_sweep_best_metric"})
        self.assertEqual(metric_names("up{job=\"x\"} == 0 and bool lora_x"),
                         {"up", "lora_x"})

    def test_issue_panels_present(self):
        want = {
            "sweep-overview.json": {
                "lora_sweep_runs", "lora_queue_depth",
                "lora_dispatch_latency_seconds_bucket",
                "lora_metric_points_ingested_total", "lora_stalled_runs"},
            "rank-ablation.json": {
                "lora_sweep_best_metric", "lora_sweep_latest_loss",
                "lora_sweep_trainable_parameters"},
            "workers.json": {
                "up", "lora_worker_jobs_running",
                "lora_worker_step_seconds_bucket",
                "lora_worker_tokens_per_second",
                "lora_worker_child_exits_total",
                "lora_worker_artifact_download_bytes_total",
                "lora_worker_artifact_upload_bytes_total"},
        }
        for name, metrics in want.items():
            used = set()
            for _, expr in expressions(self.dashboards[name]):
                used |= metric_names(expr)
            self.assertLessEqual(metrics, used, name)
        ablation = json.dumps(self.dashboards["rank-ablation.json"])
        for s in ('stat=\\"mean\\"', 'stat=\\"max\\"'):
            self.assertIn(s, ablation)

    def test_curves_link_to_loractl(self):
        for name, d in self.dashboards.items():
            with self.subTest(dashboard=name):
                texts = [p["options"]["content"] for p in all_panels(d)
                         if p["type"] == "text"]
                self.assertTrue(any("loractl results" in t and "loractl plot" in t
                                    for t in texts))

    def test_no_run_or_step_labels(self):
        for name, d in self.dashboards.items():
            for _, expr in expressions(d):
                self.assertNotRegex(expr, r"\b(run|run_id|step)\s*[=!~]", expr)

    def test_alert_rules_use_exported_metrics(self):
        exprs = alert_expressions(read("deploy/prometheus/alerts.yml"))
        self.assertGreaterEqual(len(exprs), 5)
        allowed = self.exported | PROMETHEUS_BUILTINS
        for expr in exprs:
            with self.subTest(expr=expr):
                names = metric_names(expr)
                self.assertTrue(names, expr)
                self.assertLessEqual(names, allowed,
                                     "not exported: %s" % (names - allowed))

    def test_generated_files_up_to_date(self):
        out = subprocess.run(
            [sys.executable, os.path.join(DASH_DIR, "generate.py"), "--check",
             "--out=" + DASH_DIR], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_provisioning(self):
        ds = read("dashboards/provisioning/datasources/prometheus.yaml")
        self.assertRegex(ds, r"(?m)^apiVersion: 1$")
        self.assertRegex(ds, r"(?m)^\s+type: prometheus$")
        self.assertRegex(ds, r"(?m)^\s+url: http://prometheus:9090$")
        prov = read("dashboards/provisioning/dashboards/lora-sweep.yaml")
        self.assertRegex(prov, r"(?m)^apiVersion: 1$")
        self.assertRegex(prov, r"(?m)^\s+type: file$")
        self.assertRegex(prov, r"(?m)^\s+path: /var/lib/grafana/dashboards/lora-sweep$")
        for text in (ds, prov):
            self.assertNotIn("\t", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
