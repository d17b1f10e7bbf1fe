#!/usr/bin/python3
"""Where a training step's time goes, from a LibTorch profiler Chrome trace
(`train_step_bench step --profile=TRACE.json`): self time per operator
(its duration minus the operators it called), as a share of the profiled
wall time, and the share in matrix products against everything else.

Usage: bench/profile_report.py TRACE.json [TOP_N]
"""
import collections
import json
import sys

# Operators whose self time is a matrix product kernel.
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm"}


def self_times(events):
    """Self time per operator name (each event's duration minus its direct
    children's, nesting by time), calls per name, and the time inside
    top-level operators, for the complete events of one thread."""
    totals = collections.Counter()
    counts = collections.Counter()
    top_level = 0.0
    stack = []  # open operators: [end, name, duration, children's time]

    def close(entry):
        _, name, duration, children = entry
        totals[name] += duration - children
        if stack:
            stack[-1][3] += duration

    for event in sorted(events, key=lambda e: (float(e["ts"]), -float(e["dur"]))):
        start, duration = float(event["ts"]), float(event["dur"])
        while stack and stack[-1][0] <= start:
            close(stack.pop())
        if not stack:
            top_level += duration
        stack.append([start + duration, event["name"], duration, 0.0])
        counts[event["name"]] += 1
    while stack:
        close(stack.pop())
    return totals, counts, top_level


def main():
    data = json.load(open(sys.argv[1]))
    events = data["traceEvents"] if isinstance(data, dict) else data
    top_n = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
    if not complete:
        sys.exit(f"{sys.argv[1]}: no complete operator events")
    threads = {e.get("tid") for e in complete}
    if len(threads) > 1:
        # Shares of one wall-time span are only meaningful for one thread
        # (LibTorch runs a CPU step's forward and backward on the caller's).
        sys.exit(f"{sys.argv[1]}: operator events from {len(threads)} threads; "
                 "this report reads single-thread traces")
    totals, counts, top_level = self_times(complete)
    span = (max(float(e["ts"]) + float(e["dur"]) for e in complete)
            - min(float(e["ts"]) for e in complete))
    gemm = sum(t for name, t in totals.items() if name in GEMM_OPS)
    print(f"Profiled wall time {span / 1e3:.1f} ms; inside operators "
          f"{100 * top_level / span:.1f}%, between them (framework glue) "
          f"{100 * (span - top_level) / span:.1f}%.\n")
    print(f"Matrix products (self time of {', '.join(sorted(GEMM_OPS))}): "
          f"**{100 * gemm / span:.1f}%** of the wall time; everything else "
          f"{100 * (span - gemm) / span:.1f}%.\n")
    print("| Operator | calls | self time (ms) | share of wall time |")
    print("|---|---|---|---|")
    for name, t in totals.most_common(top_n):
        print(f"| `{name}` | {counts[name]} | {t / 1e3:.1f} | {100 * t / span:.1f}% |")


if __name__ == "__main__":
    main()
