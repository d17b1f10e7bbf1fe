#!/usr/bin/env python3
"""Writes the Grafana dashboards (JSON) from this file: dashboards as code.

  python3 dashboards/generate.py            # rewrite dashboards/*.json
  python3 dashboards/generate.py --check    # exit 1 if a file is stale

Standard library only. Every panel and query uses the datasource variable
${datasource}; uids are fixed so links and provisioning stay stable.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}

CURVES_TEXT = (
    "Per-step training curves are not in Prometheus (labels never carry run "
    "ids or steps). For full curves and the per-epoch table use the CLI:\n\n"
    "```sh\n"
    "loractl results <sweep> --format markdown   # rank ablation, mean ± std over seeds\n"
    "loractl plot <sweep> -o ablation.svg        # loss / metric curves per run\n"
    "```\n\n"
    "Here: live aggregates per (sweep, model, rank, alpha) over seeds."
)


def datasource_var():
    return {
        "name": "datasource", "label": "Prometheus", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
        "regex": "", "options": [],
    }


def query_var(name, label, query, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "definition": query, "query": {"query": query, "refId": name},
        "refresh": 2, "sort": 3 if name == "rank" else 1,
        "multi": multi, "includeAll": True, "allValue": ".*",
        "current": {}, "hide": 0, "regex": "", "options": [],
    }


SWEEP = query_var("sweep", "Sweep", "label_values(lora_sweep_runs, sweep)")
MODEL = query_var(
    "model", "Model",
    'label_values(lora_sweep_best_metric{sweep=~"$sweep"}, model)')
RANK = query_var(
    "rank", "Rank",
    'label_values(lora_sweep_best_metric{sweep=~"$sweep",model=~"$model"}, rank)')
INSTANCE = query_var("instance", "Worker",
                     'label_values(up{job="lora-worker"}, instance)')


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref,
         "format": fmt}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


class Layout:
    """Assigns panel ids and grid positions, 24 columns wide."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def add(self, panel, w=12, h=8):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)


def timeseries(title, targets, unit="short", description="", stack=False):
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": DS, "targets": targets,
        "fieldConfig": {"defaults": {
            "unit": unit,
            "custom": {"stacking": {"mode": "normal" if stack else "none"},
                       "fillOpacity": 20 if stack else 0},
        }, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": ["lastNotNull"]},
                    "tooltip": {"mode": "multi"}},
    }


def stat(title, targets, unit="short", description="", thresholds=None):
    steps = thresholds or [{"color": "green", "value": None}]
    return {
        "type": "stat", "title": title, "description": description,
        "datasource": DS, "targets": targets,
        "fieldConfig": {"defaults": {
            "unit": unit,
            "thresholds": {"mode": "absolute", "steps": steps},
        }, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]},
                    "colorMode": "background", "graphMode": "area"},
    }


def table(title, targets, description=""):
    return {
        "type": "table", "title": title, "description": description,
        "datasource": DS, "targets": targets,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "transformations": [{"id": "merge", "options": {}}],
        "options": {"showHeader": True},
    }


def bargauge(title, targets, unit="short", description=""):
    return {
        "type": "bargauge", "title": title, "description": description,
        "datasource": DS, "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"orientation": "horizontal",
                    "reduceOptions": {"calcs": ["lastNotNull"]}},
    }


def text(title, content):
    return {"type": "text", "title": title, "datasource": DS,
            "options": {"mode": "markdown", "content": content}}


def dashboard(uid, title, variables, layout, tags):
    return {
        "uid": uid, "title": title, "tags": ["lora-sweep"] + tags,
        "timezone": "browser", "editable": True, "schemaVersion": 37,
        "version": 1, "refresh": "30s", "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [datasource_var()] + variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["lora-sweep"],
                   "asDropdown": True, "title": "lora-sweep",
                   "includeVars": True, "keepTime": True}],
        "panels": layout.panels,
    }


def quantiles(metric, selector, by=""):
    out = []
    for i, q in enumerate(("0.5", "0.9", "0.99")):
        out.append(target(
            "histogram_quantile(%s, sum by (le%s) (rate(%s_bucket%s"
            "[$__rate_interval])))" % (q, by, metric, selector),
            "p%s" % q[2:].ljust(2, "0") if q != "0.99" else "p99",
            chr(ord("A") + i)))
    return out


def sweep_overview():
    l = Layout()
    red_if_positive = [{"color": "green", "value": None},
                       {"color": "red", "value": 1}]
    l.add(stat("Queue depth (PENDING)", [target("sum(lora_queue_depth)")],
               description="Runs waiting for a worker, every sweep."), w=6, h=5)
    l.add(stat("Workers connected", [target("sum(lora_workers_connected)")],
               thresholds=[{"color": "red", "value": None},
                           {"color": "green", "value": 1}]), w=6, h=5)
    l.add(stat("Stalled runs", [target(
        'sum(lora_stalled_runs{sweep=~"$sweep"})')],
        thresholds=red_if_positive,
        description="RUNNING runs whose step has not advanced for lorad's "
                    "stall period."), w=6, h=5)
    l.add(stat("Metric points ingested / s", [target(
        "sum(rate(lora_metric_points_ingested_total[$__rate_interval]))")],
        unit="ops"), w=6, h=5)
    l.add(timeseries("Runs by state ($sweep)", [target(
        'sum by (state) (lora_sweep_runs{sweep=~"$sweep"})', "{{state}}")],
        stack=True))
    l.add(timeseries("Runs by state, per sweep", [target(
        'sum by (sweep, state) (lora_sweep_runs{sweep=~"$sweep",'
        'state=~"PENDING|LEASED|RUNNING"})', "{{sweep}} {{state}}")]))
    l.add(timeseries("Queue depth", [target("sum(lora_queue_depth)", "PENDING"),
                                     target("sum(lora_workers_connected)",
                                            "workers", "B")]))
    l.add(timeseries("Dispatch latency (AcquireJob → lease)",
                     quantiles("lora_dispatch_latency_seconds", ""), unit="s"))
    l.add(timeseries("Ingest rate", [target(
        "sum(rate(lora_metric_points_ingested_total[$__rate_interval]))",
        "points/s")], unit="ops"))
    l.add(timeseries("Stalled runs by sweep", [target(
        'sum by (sweep) (lora_stalled_runs{sweep=~"$sweep"})', "{{sweep}}")]))
    l.add(timeseries("Run store step latency p99 by op", [target(
        "histogram_quantile(0.99, sum by (le, op) (rate("
        "lora_store_transaction_seconds_bucket[$__rate_interval])))",
        "{{op}}")], unit="s"), w=16)
    l.add(text("Training curves", CURVES_TEXT), w=8)
    return dashboard("lora-sweep-overview", "LoRA sweep: overview", [SWEEP], l,
                     ["overview"])


def rank_ablation():
    l = Layout()
    sel = 'sweep=~"$sweep",model=~"$model",rank=~"$rank"'
    legend = "{{model}} r={{rank}} α={{alpha}}"
    l.add(text("Training curves", CURVES_TEXT), w=24, h=5)
    for stat_name in ("mean", "max"):
        l.add(timeseries(
            "Best validation metric by rank (%s over seeds)" % stat_name,
            [target('lora_sweep_best_metric{%s,stat="%s"}' % (sel, stat_name),
                    legend)],
            description="Each run's best value of the sweep's metric, "
                        "aggregated over seeds; live while runs train."))
    for stat_name in ("mean", "max"):
        l.add(timeseries(
            "Latest training loss by rank (%s over seeds)" % stat_name,
            [target('lora_sweep_latest_loss{%s,stat="%s"}' % (sel, stat_name),
                    legend)]))
    l.add(table("Rank ablation now", [
        target('max by (sweep, model, rank, alpha) (lora_sweep_best_metric{%s,'
               'stat="mean"})' % sel, "", "A", True, "table"),
        target('max by (sweep, model, rank, alpha) (lora_sweep_best_metric{%s,'
               'stat="max"})' % sel, "", "B", True, "table"),
        target('max by (sweep, model, rank, alpha) (lora_sweep_latest_loss{%s,'
               'stat="mean"})' % sel, "", "C", True, "table"),
        target('max by (sweep, model, rank, alpha) '
               '(lora_sweep_trainable_parameters{%s})' % sel, "", "D", True,
               "table"),
    ], description="A: best metric mean, B: best metric max, C: latest loss "
                   "mean, D: trainable parameters."), w=14, h=10)
    l.add(bargauge("Trainable parameters by rank", [target(
        "max by (model, rank, alpha) (lora_sweep_trainable_parameters{%s})"
        % sel, legend, instant=True)]), w=10, h=10)
    return dashboard("lora-sweep-rank-ablation", "LoRA sweep: rank ablation",
                     [SWEEP, MODEL, RANK], l, ["ablation"])


def workers():
    l = Layout()
    w = 'job="lora-worker",instance=~"$instance"'
    l.add(stat("Workers up", [target('sum(up{%s})' % w)],
               thresholds=[{"color": "red", "value": None},
                           {"color": "green", "value": 1}]), w=6, h=5)
    l.add(stat("Jobs running", [target(
        "sum(lora_worker_jobs_running{%s})" % w)]), w=6, h=5)
    l.add(stat("Tokens / s", [target(
        "sum(lora_worker_tokens_per_second{%s})" % w)]), w=6, h=5)
    l.add(stat("Connected (lorad's view)",
               [target("sum(lora_workers_connected)")]), w=6, h=5)
    l.add(timeseries("Up", [target("up{%s}" % w, "{{instance}}")]))
    l.add(timeseries("Jobs running", [target(
        "lora_worker_jobs_running{%s}" % w, "{{instance}}")], stack=True))
    l.add(timeseries("Step time quantiles", quantiles(
        "lora_worker_step_seconds", "{%s}" % w), unit="s"))
    l.add(timeseries("Tokens / s by worker", [target(
        "lora_worker_tokens_per_second{%s}" % w, "{{instance}}")],
        stack=True))
    l.add(timeseries("Child exits by reason", [target(
        "sum by (reason) (increase(lora_worker_child_exits_total{%s}"
        "[$__rate_interval]))" % w, "{{reason}}")], stack=True))
    l.add(timeseries("Artifact bytes moved", [
        target("sum(rate(lora_worker_artifact_download_bytes_total{%s}"
               "[$__rate_interval]))" % w, "download"),
        target("sum(rate(lora_worker_artifact_upload_bytes_total{%s}"
               "[$__rate_interval]))" % w, "upload", "B")], unit="Bps"))
    l.add(text("Training curves", CURVES_TEXT), w=24, h=5)
    return dashboard("lora-sweep-workers", "LoRA sweep: workers", [INSTANCE],
                     l, ["workers"])


DASHBOARDS = {
    "sweep-overview.json": sweep_overview,
    "rank-ablation.json": rank_ablation,
    "workers.json": workers,
}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv):
    check = "--check" in argv[1:]
    out_dir = HERE
    for arg in argv[1:]:
        if arg.startswith("--out="):
            out_dir = arg[len("--out="):]
    stale = []
    for name, build in DASHBOARDS.items():
        path = os.path.join(out_dir, name)
        text_ = render(build)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text_:
                        stale.append(name)
            except OSError:
                stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text_)
    if stale:
        print("stale (run python3 dashboards/generate.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
