#!/usr/bin/python3
"""Evaluates every dashboard panel's PromQL against a running Prometheus.

Usage: prometheus_integration_test.py PROM_URL SWEEP_NAME RESULTS_JSON DASH...

PROM_URL is Prometheus' base URL (http://127.0.0.1:PORT), SWEEP_NAME the
name of the sweep the test ran (lorad's `sweep` label is the sweep's name;
letters, digits and '-' only, so it is its own regex), RESULTS_JSON the output of
`loractl results SWEEP --format json`, DASH the dashboards' JSON files.
Standard library only. Exits 1 on any failure, listing them all.
"""

import json
import re
import sys
import urllib.parse
import urllib.request

# PromQL words that are not metric names.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}

failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message, file=sys.stderr)


def api(base, path, params):
    url = base + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        try:
            return json.load(error)
        except ValueError:
            return {"status": "error", "error": "HTTP %d" % error.code}
    except OSError as error:
        return {"status": "error", "error": str(error)}


def query(base, expr):
    return api(base, "/api/v1/query", {"query": expr})


def substitute(expr, values):
    """Replaces Grafana template variables by concrete values."""

    def value_of(name):
        if name not in values:
            fail("unknown template variable %r in %r" % (name, expr))
            return ".*"
        return values[name]

    # ${var}, ${var:format}, [[var]], then $var (longest names first).
    expr = re.sub(r"\$\{(\w+)(?::[^}]*)?\}", lambda m: value_of(m.group(1)),
                  expr)
    expr = re.sub(r"\[\[(\w+)(?::[^\]]*)?\]\]", lambda m: value_of(m.group(1)),
                  expr)
    expr = re.sub(r"\$(\w+)", lambda m: value_of(m.group(1)), expr)
    return expr


def metric_names(expr):
    """The metric names an expression selects (a best effort)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*"
                  r"\([^)]*\)", " ", text)  # grouping label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def targets(panels):
    for panel in panels:
        for target in panel.get("targets", []) or []:
            if target.get("expr"):
                yield panel.get("title", "?"), target["expr"]
        # Rows (collapsed or not) hold panels of their own.
        yield from targets(panel.get("panels", []) or [])


def vector(base, expr):
    result = query(base, expr)
    if result.get("status") != "success":
        fail("%s: %s" % (expr, result.get("error")))
        return []
    return result["data"]["result"]


def main():
    base, sweep, results_path = sys.argv[1:4]
    dashboards = sys.argv[4:]
    with open(results_path) as f:
        results = json.load(f)

    if not re.fullmatch(r"[A-Za-z0-9-]+", sweep):
        fail("sweep name %r is not its own regex" % sweep)
        return 1
    values = {
        "sweep": sweep,
        "model": ".*",
        "rank": ".*",
        "alpha": ".*",
        "instance": ".*",
        "job": ".*",
        "datasource": "prometheus",
        # Grafana's $__rate_interval is at least four scrape intervals; a
        # minute holds plenty of 1 s scrapes.
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": "5m",
    }

    # 1. Every panel's expression parses and evaluates; every metric it
    # names has series.
    checked = 0
    all_names = set()
    for path in dashboards:
        with open(path) as f:
            dashboard = json.load(f)
        for title, expr in targets(dashboard.get("panels", [])):
            concrete = substitute(expr, values)
            result = query(base, concrete)
            checked += 1
            if result.get("status") != "success":
                fail("%s: panel %r: %s: %s" % (path, title, concrete,
                                               result.get("error")))
            all_names |= metric_names(concrete)
        # Template variable queries: label_values(METRIC{...}, label).
        for variable in dashboard.get("templating", {}).get("list", []):
            q = variable.get("query")
            if isinstance(q, dict):
                q = q.get("query")
            if variable.get("type") != "query" or not q:
                continue
            m = re.match(r"label_values\((.*),\s*(\w+)\)$", q)
            if not m:
                fail("%s: variable %s: unexpected query %r" %
                     (path, variable.get("name"), q))
                continue
            selector = substitute(m.group(1), values)
            data = vector(base, "count by (%s) (%s)" % (m.group(2), selector))
            if not any(s["metric"].get(m.group(2)) for s in data):
                fail("%s: variable %s: %s has no values" %
                     (path, variable.get("name"), q))
            all_names |= metric_names(selector)
    if checked == 0:
        fail("no panel expressions found")
    print("%d panel expressions evaluated" % checked)

    for name in sorted(all_names):
        series = api(base, "/api/v1/series", {"match[]": name})
        if series.get("status") != "success" or not series.get("data"):
            fail("metric %s has no series in Prometheus (%s)" %
                 (name, series.get("error", "empty")))
    print("%d metric names have series: %s" %
          (len(all_names), " ".join(sorted(all_names))))

    # 2. The core panels, with their expected values.
    sel = 'sweep="%s"' % sweep
    runs = vector(base, 'sum by (state) (lora_sweep_runs{%s})' % sel)
    by_state = {s["metric"].get("state"): float(s["value"][1]) for s in runs}
    if by_state.get("SUCCEEDED") != 4:
        fail("lora_sweep_runs SUCCEEDED: got %r" % by_state)
    for state, count in by_state.items():
        if state != "SUCCEEDED" and count != 0:
            fail("lora_sweep_runs %s = %s, want 0" % (state, count))
    total = vector(base, 'lora_runs{state="SUCCEEDED"}')
    if not total or float(total[0]["value"][1]) != 4:
        fail("lora_runs{state=\"SUCCEEDED\"}: got %r" % total)

    ablation = {str(g["value"]): g for g in results.get("ablation", [])}
    parameters = {str(g["value"]): g for g in results.get("parameters", [])}
    for rank in ("1", "2"):
        for stat in ("mean", "max"):
            best = vector(base, 'lora_sweep_best_metric{%s,rank="%s",'
                          'stat="%s"}' % (sel, rank, stat))
            if len(best) != 1:
                fail("lora_sweep_best_metric rank %s %s: %r" %
                     (rank, stat, best))
                continue
            if best[0]["metric"].get("model") != "roberta-tiny":
                fail("lora_sweep_best_metric rank %s: model %r" %
                     (rank, best[0]["metric"].get("model")))
            got = float(best[0]["value"][1])
            want = ablation.get(rank, {}).get(stat)
            if want is None or abs(got - want) > 1e-6 * max(1, abs(want)):
                fail("lora_sweep_best_metric rank %s %s = %r, loractl "
                     "results say %r" % (rank, stat, got, want))
        trainable = vector(base, 'max by (model, rank, alpha) '
                           '(lora_sweep_trainable_parameters{%s,rank="%s"})' %
                           (sel, rank))
        want = parameters.get(rank, {}).get("trainable_parameters")
        if len(trainable) != 1 or want is None or \
                float(trainable[0]["value"][1]) != float(want):
            fail("lora_sweep_trainable_parameters rank %s: %r, loractl "
                 "results say %r" % (rank, trainable, want))
        else:
            print("rank %s: %d trainable parameters" % (rank, want))

    up = vector(base, 'up{job="lora-worker"}')
    if len(up) != 1 or float(up[0]["value"][1]) != 1:
        fail("up{job=\"lora-worker\"}: %r" % up)
    workers_up = vector(base, 'sum(up{job="lora-worker",instance=~".*"})')
    if not workers_up or float(workers_up[0]["value"][1]) != 1:
        fail("Workers up panel: %r" % workers_up)
    connected = vector(base, "sum(lora_workers_connected)")
    if not connected or float(connected[0]["value"][1]) != 1:
        fail("lora_workers_connected: %r" % connected)
    lorad_up = vector(base, 'up{job="lorad"}')
    if len(lorad_up) != 1 or float(lorad_up[0]["value"][1]) != 1:
        fail("up{job=\"lorad\"}: %r" % lorad_up)

    if failures:
        print("%d failures" % len(failures), file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
