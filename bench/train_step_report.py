#!/usr/bin/python3
"""Tables for BENCHMARKS.md from bench/train_step_compare.sh's results.jsonl.

  bench/train_step_report.py runs/train_step/results.jsonl > report.md

Per configuration: median tokens/s of each implementation over the
repetitions and the median of the per-repetition ratios (C++ / Python: both
ran back to back in the same repetition). The ceiling: median GEMM FLOP/s
per shape and dtype, combined into the rate the roberta-base step's own GEMM
mix would run at (time-weighted: total FLOPs over the sum of each shape's
FLOPs divided by its rate). The step's FLOPs per token follow the issue's
count: 4 per non-embedding weight (forward and input gradients; frozen
weights need no weight gradient) plus attention (QK^T and AV, forward and
both input gradients: 12 * seq * hidden per layer).
"""
import json
import statistics
import sys
from collections import defaultdict

# roberta-base: hidden 768, intermediate 3072, 12 layers; seq 64.
HIDDEN, INTER, LAYERS, SEQ = 768, 3072, 12, 64
NON_EMBEDDING_WEIGHTS = LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTER)
FLOPS_PER_TOKEN = 4 * NON_EMBEDDING_WEIGHTS + 12 * SEQ * HIDDEN * LAYERS
# The step's GEMMs per layer and token, forward + input gradient, by shape
# (M x K x N with M = batch * seq): q, k, v, o and their gradients are
# 768x768; the FFN's up projection and the down projection's gradient are
# 768x3072; the down projection and the up projection's gradient 3072x768.
GEMM_MIX = {
    (768, 768): 8 * 2 * HIDDEN * HIDDEN,
    (768, 3072): 2 * 2 * HIDDEN * INTER,
    (3072, 768): 2 * 2 * HIDDEN * INTER,
}
TARGETS = {"base-fp32": 1.0, "base-bf16": 1.15, "small-bf16": 1.5}
LABELS = {
    "base-fp32": "roberta-base shape, float32, batch 16",
    "base-bf16": "roberta-base shape, bf16 autocast, batch 16",
    "small-bf16": "roberta-mini (4 x 256), bf16 autocast, batch 32",
}


def variant(result):
    """python, cpp (all speed measures), cpp-off (none), or cpp-no-<measure>."""
    if result["impl"] == "python":
        return "python"
    disabled = result.get("disabled", "")
    if not disabled:
        return "cpp"
    return "cpp-off" if disabled == "all" else f"cpp-no-{disabled}"


def median_ratio(by_rep, config, top, bottom):
    ratios = [r[top] / r[bottom] for (c, _), r in by_rep.items()
              if c == config and top in r and bottom in r]
    return statistics.median(ratios)


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    steps = defaultdict(lambda: defaultdict(list))  # config -> impl -> [tok/s]
    by_rep = defaultdict(dict)                      # (config, rep) -> impl -> tok/s
    gemm = defaultdict(list)                        # (dtype, k, n) -> [flops]
    trainable = {}
    for row in rows:
        result = row["result"]
        if row["config"] == "gemm":
            gemm[(result["dtype"], result["k"], result["n"])].append(result["flops"])
            continue
        impl = variant(result)
        steps[row["config"]][impl].append(result["tokens_per_second"])
        by_rep[(row["config"], row["rep"])][impl] = result["tokens_per_second"]
        trainable.setdefault(row["config"], set()).add(result["trainable"])
    repetitions = len({row["rep"] for row in rows})

    ceiling = {}
    print(f"GEMM ceiling, 2 threads, median of {repetitions} interleaved runs "
          "(each the median of 10 products):\n")
    print("| dtype | 1024x768x768 | 1024x768x3072 | 1024x3072x768 | step mix |")
    print("|---|---|---|---|---|")
    for dtype in ("bf16", "fp32"):
        rates = {shape: statistics.median(gemm[(dtype, *shape)]) for shape in GEMM_MIX}
        total = sum(GEMM_MIX.values())
        ceiling[dtype] = total / sum(GEMM_MIX[s] / rates[s] for s in GEMM_MIX)
        cells = " | ".join(f"{rates[s] / 1e9:.0f}" for s in GEMM_MIX)
        print(f"| {dtype} | {cells} | **{ceiling[dtype] / 1e9:.0f}** GFLOP/s |")
    print()
    print(f"Training step, tokens/s, median of {repetitions} interleaved "
          "repetitions (ratio: median of the per-repetition ratios):\n")
    print("| Configuration | lora-sweep C++ | C++, speed measures off | PyTorch eager |"
          " Ratio C++ / Python | Target | Ratio, measures off | C++ % of ceiling |"
          " Python % of ceiling |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config in ("base-fp32", "base-bf16", "small-bf16"):
        if config not in steps:
            continue
        assert len(trainable[config]) == 1, f"{config}: trainable counts differ"
        cpp = statistics.median(steps[config]["cpp"])
        python = statistics.median(steps[config]["python"])
        off = statistics.median(steps[config]["cpp-off"])
        ratio = median_ratio(by_rep, config, "cpp", "python")
        ratio_off = median_ratio(by_rep, config, "cpp-off", "python")
        if config.startswith("base"):
            dtype = config.split("-")[1]
            cpp_share = f"{100 * cpp * FLOPS_PER_TOKEN / ceiling[dtype]:.0f}%"
            python_share = f"{100 * python * FLOPS_PER_TOKEN / ceiling[dtype]:.0f}%"
        else:
            cpp_share = python_share = "—"
        print(f"| {LABELS[config]} | {cpp:,.0f} | {off:,.0f} | {python:,.0f} | "
              f"**{ratio:.2f}x** | >= {TARGETS[config]:.2f}x | {ratio_off:.2f}x | "
              f"{cpp_share} | {python_share} |")
    ablation = sorted(v for v in steps.get("base-bf16", {}) if v.startswith("cpp-no-"))
    if ablation:
        print()
        print("What each measure buys (roberta-base shape, bf16): the step with one "
              "measure off, against all on, same repetition:\n")
        print("| Measure off | tokens/s | All on / this |")
        print("|---|---|---|")
        for name in ablation:
            print(f"| {name[len('cpp-no-'):]} | {statistics.median(steps['base-bf16'][name]):,.0f} | "
                  f"{median_ratio(by_rep, 'base-bf16', 'cpp', name):.3f}x |")
        print(f"| all (speedups off) | {statistics.median(steps['base-bf16']['cpp-off']):,.0f} | "
              f"{median_ratio(by_rep, 'base-bf16', 'cpp', 'cpp-off'):.3f}x |")
    print()
    print(f"Step FLOPs per token (roberta-base, seq {SEQ}): "
          f"{FLOPS_PER_TOKEN / 1e6:.1f} M = 4 x {NON_EMBEDDING_WEIGHTS / 1e6:.2f} M "
          f"non-embedding weights + attention.")


if __name__ == "__main__":
    main()
