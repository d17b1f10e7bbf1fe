#!/usr/bin/python3
"""The bare LoRA training step in plain PyTorch eager, for comparison with
bench/train_step_bench.cc (same step, same model, same LibTorch kernels
through Debian's python3-torch).

The model is written the way a PyTorch user writes it: Hugging Face's
RoBERTa layout as torch.nn modules (dropout 0.1 in train mode), a
RobertaClassificationHead with 2 labels, PEFT-style LoRA on query and value
(y = x W^T + b + (x A^T) B^T * alpha / r), the base frozen. The step:
forward under torch.autocast("cpu", bfloat16) (or float32), cross-entropy,
backward, clip_grad_norm_(1.0), AdamW(lr 1e-4, weight decay 0.01),
zero_grad. One fixed random batch.

  bench/train_step_python.py --model=roberta-base --amp=bf16 --batch=16 \\
      --seq=64 --rank=4 --threads=2 --steps=10 --warmup=2

Prints one JSON object on stdout.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# (vocab, hidden, layers, heads, intermediate, max_positions), as the
# built-in configs of lora_core/model_config.cc.
CONFIGS = {
    "roberta-base": (50265, 768, 12, 12, 3072, 514),
    "roberta-tiny": (50262, 32, 2, 4, 64, 130),
    "roberta-mini": (50262, 256, 4, 4, 1024, 130),
}
PAD = 1
DROPOUT = 0.1
EPS = 1e-5


class LoraLinear(nn.Module):
    def __init__(self, n_in, n_out, rank=0, alpha=16.0):
        super().__init__()
        self.base = nn.Linear(n_in, n_out)
        self.rank = rank
        if rank:
            self.base.weight.requires_grad_(False)
            self.base.bias.requires_grad_(False)
            self.lora_A = nn.Parameter(torch.empty(rank, n_in))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = nn.Parameter(torch.zeros(n_out, rank))
            self.scaling = alpha / rank

    def forward(self, x):
        y = self.base(x)
        if self.rank:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        return y


class Layer(nn.Module):
    def __init__(self, h, heads, inter, rank):
        super().__init__()
        self.heads = heads
        self.query = LoraLinear(h, h, rank)
        self.key = nn.Linear(h, h)
        self.value = LoraLinear(h, h, rank)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=EPS)
        self.inter = nn.Linear(h, inter)
        self.out = nn.Linear(inter, h)
        self.out_norm = nn.LayerNorm(h, eps=EPS)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x, mask):
        b, t, h = x.shape
        d = h // self.heads

        def split(y):
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
        probs = self.dropout(torch.softmax(scores, -1))
        ctx = (probs.to(v.dtype) @ v).transpose(1, 2).reshape(b, t, h)
        a = self.attn_norm(self.dropout(self.attn_out(ctx)) + x)
        return self.out_norm(self.dropout(self.out(F.gelu(self.inter(a)))) + a)


class Model(nn.Module):
    def __init__(self, name, rank):
        super().__init__()
        vocab, h, layers, heads, inter, positions = CONFIGS[name]
        self.word = nn.Embedding(vocab, h, padding_idx=PAD)
        self.position = nn.Embedding(positions, h, padding_idx=PAD)
        self.token_type = nn.Embedding(1, h)
        self.norm = nn.LayerNorm(h, eps=EPS)
        self.dropout = nn.Dropout(DROPOUT)
        self.layers = nn.ModuleList(Layer(h, heads, inter, rank) for _ in range(layers))
        self.head_dense = nn.Linear(h, h)
        self.head_out = nn.Linear(h, 2)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
        # Frozen: everything but LoRA and the head.
        for name_, p in self.named_parameters():
            p.requires_grad_("lora_" in name_ or name_.startswith("head_"))

    def forward(self, ids, attention_mask):
        real = (ids != PAD).long()
        positions = torch.cumsum(real, 1) * real + PAD
        x = self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids))
        x = self.dropout(self.norm(x))
        mask = ((1.0 - attention_mask.float()) * torch.finfo(torch.float32).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        first = self.dropout(x[:, 0])
        return self.head_out(self.dropout(torch.tanh(self.head_dense(first))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="roberta-base", choices=sorted(CONFIGS))
    parser.add_argument("--amp", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Model(args.model, args.rank)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4, weight_decay=0.01)
    vocab = CONFIGS[args.model][0]
    ids = torch.randint(3, vocab, (args.batch, args.seq))
    attention_mask = torch.ones(args.batch, args.seq, dtype=torch.long)
    labels = torch.randint(0, 2, (args.batch,))
    seconds = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            logits = model(ids, attention_mask)
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        last_loss = loss.item()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
    print(json.dumps({
        "impl": "python", "model": args.model, "amp": args.amp, "batch": args.batch,
        "seq": args.seq, "threads": args.threads, "steps": args.steps,
        "trainable": sum(p.numel() for p in parameters),
        "tokens_per_second": args.batch * args.seq * args.steps / sum(seconds),
        "loss": last_loss,
    }))


if __name__ == "__main__":
    main()
