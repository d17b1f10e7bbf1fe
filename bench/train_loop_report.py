#!/usr/bin/python3
"""Markdown tables for bench/train_loop_compare.sh's results.jsonl: a whole
run end to end, lora-train against the PyTorch eager loop. Medians over the
repetitions; ratios are medians of the per-repetition ratios (both
implementations ran back to back in each repetition).

Usage: bench/train_loop_report.py RESULTS_JSONL
"""
import json
import statistics
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    by_rep = {}
    for row in rows:
        by_rep.setdefault(row["rep"], {})[row["impl"]] = row
    reps = [r for r in by_rep.values() if {"cpp", "python"} <= set(r)]
    if not reps:
        sys.exit(f"{sys.argv[1]}: no repetition with both implementations")

    def figures(row):
        tokens = row["tokens"]
        wall = row["process_seconds"]
        return {
            "end_to_end": tokens / wall,
            "in_steps": tokens / row["steps_seconds"],
            "share_steps": row["steps_seconds"] / wall,
            "share_evaluation": row["evaluation_seconds"] / wall,
            "share_checkpoints": row["checkpoint_seconds"] / wall,
            "share_rest": (wall - row["steps_seconds"] - row["evaluation_seconds"]
                           - row["checkpoint_seconds"]) / wall,
            "without_evaluation": tokens / (wall - row["evaluation_seconds"])
                                  / (tokens / row["steps_seconds"]),
            "wall": wall,
            "accuracy": row["val_accuracy"],
        }

    med = statistics.median
    table = {impl: {key: med(figures(r[impl])[key] for r in reps)
                    for key in figures(reps[0][impl])} for impl in ("cpp", "python")}
    ratio_e2e = med(figures(r["cpp"])["end_to_end"] / figures(r["python"])["end_to_end"]
                    for r in reps)
    ratio_steps = med(figures(r["cpp"])["in_steps"] / figures(r["python"])["in_steps"]
                      for r in reps)
    tokens = reps[0]["cpp"]["tokens"]
    print(f"{len(reps)} repetitions; {tokens:,} training tokens per run "
          f"({reps[0]['cpp']['steps']} steps); medians.\n")
    print("| | lora-train | PyTorch eager loop | C++ / Python (median of the "
          "per-repetition ratios) |")
    print("|---|---|---|---|")
    c, p = table["cpp"], table["python"]
    print(f"| process wall time (s) | {c['wall']:.1f} | {p['wall']:.1f} | |")
    print(f"| end-to-end tokens/s | {c['end_to_end']:,.0f} | {p['end_to_end']:,.0f} "
          f"| **{ratio_e2e:.2f}×** |")
    print(f"| tokens/s inside the training steps | {c['in_steps']:,.0f} | "
          f"{p['in_steps']:,.0f} | {ratio_steps:.2f}× |")
    print(f"| end to end / inside the steps | **{c['end_to_end'] / c['in_steps']:.3f}** | "
          f"{p['end_to_end'] / p['in_steps']:.3f} | |")
    print(f"| the same without evaluation time | **{c['without_evaluation']:.3f}** | "
          f"{p['without_evaluation']:.3f} | |")
    for key, label in (("share_steps", "training steps"),
                       ("share_evaluation", "evaluation (every epoch)"),
                       ("share_checkpoints", "checkpoints (every epoch)"),
                       ("share_rest", "the rest (start-up, loading, batching, export)")):
        print(f"| share of wall time: {label} | {100 * c[key]:.1f}% | {100 * p[key]:.1f}% | |")
    print(f"| final validation accuracy | {c['accuracy']:.3f} | {p['accuracy']:.3f} | |")


if __name__ == "__main__":
    main()
