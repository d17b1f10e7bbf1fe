#!/usr/bin/env python3
"""Tables of the LoRA study (bench/lora_study.sh) from its results.json files.

Usage: study_report.py STUDY_DIR > report.md
"""

import json
import os
import statistics
import sys

VARIANTS = [
    ("head_only", "Head only (linear probe)"),
    ("lora_r1", "LoRA r=1 (q, v)"),
    ("lora_r2", "LoRA r=2 (q, v)"),
    ("lora_r4", "LoRA r=4 (q, v)"),
    ("lora_r8", "LoRA r=8 (q, v)"),
    ("full", "Full fine-tuning"),
    ("scratch", "Random init, full training"),
]


def load(path):
    with open(path) as f:
        return json.load(f)


def e2e_row(path, label):
    """A table row (label, trainable parameters, validation loss, BLEU) for a
    completed E2E run's results.json, or None."""
    if not os.path.exists(path):
        return None
    r = load(path)
    if r.get("status") != "completed":
        return None
    m = r["final_metrics"]
    return (f"| {label} | {r['parameters']['trainable']:,} | "
            f"{m['val_loss']:.3f} | {100 * m['val_bleu']:.2f} |")


def mean_std(values):
    if len(values) == 1:
        return f"{100 * values[0]:.2f}%"
    return (f"{100 * statistics.mean(values):.2f}% ± "
            f"{100 * statistics.stdev(values):.2f}")


def main():
    root = sys.argv[1]
    out = []
    pre = os.path.join(root, "roberta_pretrain", "results.json")
    if os.path.exists(pre):
        r = load(pre)
        m = r.get("final_metrics", {})
        out.append("### Pretraining (masked LM)\n")
        out.append(f"- model: {r['model']}, {r['parameters']['total']:,} "
                   f"parameters, {r['steps']} steps, "
                   f"{r['train_seconds'] / 60:.1f} min, "
                   f"{r['tokens_per_second']:,.0f} tokens/s")
        out.append(f"- validation masked-LM loss {m.get('val_loss', float('nan')):.3f} "
                   f"(perplexity {m.get('val_perplexity', float('nan')):.1f})\n")
    rows = []
    per_epoch = None
    for key, label in VARIANTS:
        base = os.path.join(root, "polarity", key)
        if not os.path.isdir(base):
            continue
        final, best, seeds = [], [], []
        params = None
        for seed_dir in sorted(os.listdir(base)):
            path = os.path.join(base, seed_dir, "results.json")
            if not os.path.exists(path):
                continue
            r = load(path)
            if r.get("status") != "completed":
                continue
            final.append(r["final_metrics"]["val_accuracy"])
            best.append(r["best"]["value"])
            seeds.append(seed_dir.replace("seed", ""))
            params = r["parameters"]
            if key == "lora_r4" and per_epoch is None:
                per_epoch = (seed_dir, r["history"])
        if not final:
            continue
        share = 100.0 * params["trainable"] / params["total"]
        rows.append(f"| {label} | {params['trainable']:,} | {share:.3f}% | "
                    f"{mean_std(final)} | {mean_std(best)} | {', '.join(seeds)} |")
    if rows:
        out.append("### Pang & Lee polarity (3,000 train / 1,000 validation)\n")
        out.append("| Variant | Trainable params | % of total | Val accuracy, "
                   "final epoch (mean ± std) | Val accuracy, best epoch | Seeds |")
        out.append("|---|---|---|---|---|---|")
        out.extend(rows)
        out.append("")
    if per_epoch:
        seed_dir, history = per_epoch
        out.append(f"### Per-epoch, LoRA r=4 ({seed_dir})\n")
        out.append("| Epoch | Train Loss | Val Accuracy |")
        out.append("|------|-----------|--------------|")
        for h in history:
            out.append(f"| {h['epoch']} | {h['train_loss']:.4f} | "
                       f"{100 * h['val_accuracy']:.2f}% |")
        out.append("")
    gpre = os.path.join(root, "gpt2_pretrain", "results.json")
    if os.path.exists(gpre):
        r = load(gpre)
        m = r.get("final_metrics", {})
        out.append("### GPT-2 pretraining (causal LM)\n")
        out.append(f"- model: {r['model']}, {r['steps']} steps, "
                   f"{r['train_seconds'] / 60:.1f} min; validation loss "
                   f"{m.get('val_loss', float('nan')):.3f} (perplexity "
                   f"{m.get('val_perplexity', float('nan')):.1f})\n")
    e2e_rows = []
    e2e = os.path.join(root, "e2e")
    if os.path.isdir(e2e):
        for r_value in (1, 2, 4, 8):
            row = e2e_row(os.path.join(e2e, f"lora_r{r_value}", "results.json"),
                          str(r_value))
            if row:
                e2e_rows.append(row)
    if e2e_rows:
        out.append("### GPT-2 on generated E2E data, LoRA on q and v\n")
        out.append("| Rank (r) | Trainable params | Val loss | BLEU-4 |")
        out.append("|---|---|---|---|")
        out.extend(e2e_rows)
        out.append("")
    comparison = []
    if os.path.isdir(e2e):
        ranks = sorted(int(n[len("lora_all_r"):]) for n in os.listdir(e2e)
                       if n.startswith("lora_all_r") and n[len("lora_all_r"):].isdigit())
        variants = []
        for r_value in ranks:
            variants += [(f"lora_r{r_value}", f"LoRA r={r_value} (q, v)"),
                         (f"lora_all_r{r_value}",
                          f"LoRA r={r_value} (c_attn, c_proj, c_fc)")]
        variants += [("full", "Full fine-tuning"),
                     ("scratch", "Random init, full training")]
        for name, label in variants:
            row = e2e_row(os.path.join(e2e, name, "results.json"), label)
            if row:
                comparison.append(row)
    if comparison:
        out.append("### GPT-2 on generated E2E data, LoRA against the other ways "
                   "to adapt (seed 0)\n")
        out.append("| Variant | Trainable params | Val loss | BLEU-4 |")
        out.append("|---|---|---|---|")
        out.extend(comparison)
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
