#!/usr/bin/python3
"""A whole LoRA fine-tuning run in plain PyTorch eager, the way a researcher
writes one, for comparison with `lora-train train` end to end
(bench/train_loop_compare.sh).

It trains the model of bench/train_step_python.py (RoBERTa layout, LoRA on
query and value, RobertaClassificationHead, dropout 0.1) on the same
tokenised examples lora-train trains on: lora-train's own dataset cache file
(lora_core/task_data.cc, format "lora-sweep tokenised dataset v1"), so both
see identical token ids. The loop does what lora-train does: length-bucketed
shuffled batches with dynamic padding, bf16 autocast, cross-entropy,
backward, gradient clipping at 1.0, AdamW with linear warmup and decay, a
metrics line every --log-every steps, evaluation on the whole validation set
after every epoch (length-sorted batches, no_grad), a checkpoint of the
trainable weights and optimizer state after every epoch, and the trainable
weights saved at the end.

  bench/train_loop_python.py --cache FILE --out DIR [--model roberta-mini]
      [--epochs 4] [--batch 32] [--lr 2e-3] ...

Prints one JSON object on stdout: tokens trained, seconds in steps,
evaluation and checkpoints, and the process's wall time since it started
(imports included).
"""
import time

PROCESS_START = time.perf_counter()

import argparse
import json
import math
import os
import random
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step_python import Model, PAD  # noqa: E402

CACHE_HEADER = b"lora-sweep tokenised dataset v1\n"


def read_cache(path):
    """(train, validation) lists of (input_ids, label) from lora-train's
    dataset cache."""
    data = open(path, "rb").read()
    if not data.startswith(CACHE_HEADER):
        sys.exit(f"{path}: not a lora-sweep dataset cache (header {data[:32]!r})")
    offset = len(CACHE_HEADER)

    def integer():
        nonlocal offset
        (value,) = struct.unpack_from("<q", data, offset)
        offset += 8
        return value

    def examples():
        nonlocal offset
        out = []
        for _ in range(integer()):
            label, _prompt_length, _group, size = (integer() for _ in range(4))
            ids = list(struct.unpack_from(f"<{size}q", data, offset))
            offset += 8 * size
            out.append((ids, label))
        return out

    train = examples()
    validation = examples()
    return train, validation


def training_batches(lengths, batch, rng, pool_batches=50):
    """Shuffle, sort pools of batch * pool_batches by length, cut, shuffle
    the batches: lora_core/batching.h's scheme."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    pool = batch * pool_batches
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
    rng.shuffle(batches)
    return batches


def collate(examples, indices):
    width = max(len(examples[i][0]) for i in indices)
    ids = torch.full((len(indices), width), PAD, dtype=torch.long)
    for row, i in enumerate(indices):
        tokens = examples[i][0]
        ids[row, :len(tokens)] = torch.tensor(tokens)
    attention_mask = (ids != PAD).long()
    labels = torch.tensor([examples[i][1] for i in indices])
    return ids, attention_mask, labels


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="roberta-mini")
    parser.add_argument("--amp", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--eval-batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-ratio", type=float, default=0.06)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    metrics = open(os.path.join(args.out, "metrics.jsonl"), "w")

    train, validation = read_cache(args.cache)
    model = Model(args.model, args.rank)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.0)
    lengths = [len(ids) for ids, _ in train]
    steps_per_epoch = (len(train) + args.batch - 1) // args.batch
    total_steps = steps_per_epoch * args.epochs
    # lora_core/optimization.cc's LinearWarmupDecayFactor.
    warmup = math.ceil(args.warmup_ratio * total_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / max(1, warmup) if s < warmup
        else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    autocast = dict(device_type="cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16")

    step = tokens = 0
    step_seconds = evaluation_seconds = checkpoint_seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        loss_sum = 0.0
        for indices in training_batches(lengths, args.batch, rng):
            start = time.perf_counter()
            ids, attention_mask, labels = collate(train, indices)
            with torch.autocast(**autocast):
                logits = model(ids, attention_mask)
            loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            lr = schedule.get_last_lr()[0]  # the rate this step uses
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            loss_value = loss.item()
            loss_sum += loss_value
            batch_tokens = int(attention_mask.sum())
            tokens += batch_tokens
            seconds = time.perf_counter() - start
            step_seconds += seconds
            if step % args.log_every == 0:
                metrics.write(json.dumps({
                    "type": "step", "step": step, "epoch": epoch, "loss": loss_value,
                    "lr": lr, "grad_norm": float(grad_norm),
                    "tokens_per_second": batch_tokens / seconds}) + "\n")
                metrics.flush()

        start = time.perf_counter()
        model.eval()
        correct = 0
        val_loss = 0.0
        order = sorted(range(len(validation)), key=lambda i: len(validation[i][0]))
        with torch.no_grad():
            for b in range(0, len(order), args.eval_batch):
                ids, attention_mask, labels = collate(validation, order[b:b + args.eval_batch])
                with torch.autocast(**autocast):
                    logits = model(ids, attention_mask).float()
                val_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
                correct += int((logits.argmax(-1) == labels).sum())
        evaluation_seconds += time.perf_counter() - start
        metrics.write(json.dumps({
            "type": "epoch", "epoch": epoch, "step": step,
            "train_loss": loss_sum / steps_per_epoch,
            "val_loss": val_loss / len(validation),
            "val_accuracy": correct / len(validation)}) + "\n")
        metrics.flush()

        start = time.perf_counter()
        torch.save({"model": {n: p for n, p in model.named_parameters() if p.requires_grad},
                    "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch},
                   os.path.join(args.out, "checkpoint.pt.tmp"))
        os.replace(os.path.join(args.out, "checkpoint.pt.tmp"),
                   os.path.join(args.out, "checkpoint.pt"))
        checkpoint_seconds += time.perf_counter() - start

    torch.save({n: p for n, p in model.named_parameters() if p.requires_grad},
               os.path.join(args.out, "adapter.pt"))
    wall = time.perf_counter() - PROCESS_START
    print(json.dumps({
        "impl": "python", "model": args.model, "amp": args.amp, "batch": args.batch,
        "epochs": args.epochs, "steps": step, "tokens": tokens,
        "trainable": sum(p.numel() for p in parameters),
        "steps_seconds": step_seconds, "evaluation_seconds": evaluation_seconds,
        "checkpoint_seconds": checkpoint_seconds, "wall_seconds": wall,
        "val_accuracy": correct / len(validation)}))


if __name__ == "__main__":
    main()
