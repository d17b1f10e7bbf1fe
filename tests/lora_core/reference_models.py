#!/usr/bin/env python3
"""Independent Python reference models for the LoRA cross-implementation test.

This script is an *independent* reference: it does not use `transformers`,
`peft` or `safetensors`.  The RoBERTa and GPT-2 forward passes are written
here from the published architecture definitions using plain torch tensor
operations, and the safetensors format is written and read by hand.  The C++
implementation under test is expected to load the files this script writes
and reproduce the outputs it stores.

Usage:
    reference_models.py --arch {roberta,gpt2} --out DIR [--lora] [--seed N]
    reference_models.py --self-test [--arch {roberta,gpt2}] [--seed N]

Files written into DIR:
    config.json                 Hugging Face-style model config.
    model.safetensors           Base weights, Hugging Face state-dict names.
    inputs.safetensors          input_ids and attention_mask (int64, [2, T]).
    outputs.safetensors         float32 reference outputs.
    adapter_config.json         (--lora) PEFT adapter config.
    adapter_model.safetensors   (--lora) PEFT adapter weights.

With --lora the stored outputs are computed with the LoRA deltas applied; the
base weights and the inputs are identical to those of the run without --lora
(same seed), because they are drawn from the RNG before the LoRA weights.

Everything runs on CPU in float32 with one thread, in eval mode (dropout is
the identity), so the same seed always yields byte-identical files.
"""

import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Fixed hyper-parameters of the two tiny models.
# ---------------------------------------------------------------------------

ROBERTA_CONFIG = {
    "architectures": ["RobertaForSequenceClassification"],
    "model_type": "roberta",
    "vocab_size": 120,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 40,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-5,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "num_labels": 2,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
}

GPT2_CONFIG = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "vocab_size": 100,
    "n_positions": 64,
    "n_embd": 32,
    "n_layer": 2,
    "n_head": 4,
    "n_inner": None,  # None => 4 * n_embd
    "activation_function": "gelu_new",
    "resid_pdrop": 0.1,
    "embd_pdrop": 0.1,
    "attn_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 0,
}

LORA_R = 4
LORA_ALPHA = 8
LORA_SCALING = LORA_ALPHA / LORA_R  # = 2.0 (no rsLoRA)

ROBERTA_ADAPTER_CONFIG = {
    "peft_type": "LORA",
    "task_type": "SEQ_CLS",
    "r": LORA_R,
    "lora_alpha": LORA_ALPHA,
    "lora_dropout": 0.0,
    "target_modules": ["query", "value"],
    "bias": "none",
    "fan_in_fan_out": False,
    "use_rslora": False,
    "modules_to_save": ["classifier"],
    "base_model_name_or_path": "reference-roberta",
    "inference_mode": True,
}

GPT2_ADAPTER_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "r": LORA_R,
    "lora_alpha": LORA_ALPHA,
    "lora_dropout": 0.0,
    "target_modules": ["c_attn", "c_fc"],
    "bias": "none",
    "fan_in_fan_out": True,
    "use_rslora": False,
    "modules_to_save": None,
    "base_model_name_or_path": "reference-gpt2",
    "inference_mode": True,
}

# Standard deviations of the random initialisation.  They are deliberately
# much larger than the usual 0.02 so that a wrong transpose, a missing bias or
# a mis-scaled softmax produces a clearly visible difference.
WEIGHT_STD = 0.2
BIAS_STD = 0.1
LN_STD = 0.1
LORA_STD = 0.3

# Additive value used for masked attention scores (as Hugging Face does).
MASK_MIN = torch.finfo(torch.float32).min


# ---------------------------------------------------------------------------
# safetensors writer / reader (hand-written).
# ---------------------------------------------------------------------------

# torch dtype -> (safetensors dtype string, explicit little-endian numpy dtype)
_ST_DTYPES = {
    torch.float32: ("F32", np.dtype("<f4")),
    torch.int64: ("I64", np.dtype("<i8")),
}
_ST_NUMPY = {name: np_dtype for name, np_dtype in _ST_DTYPES.values()}


def encode_safetensors(tensors):
    """Serialises an ordered dict {name: torch.Tensor} to safetensors bytes.

    Layout: u64-LE header length N, N bytes of JSON header (padded with
    spaces so that 8 + N is a multiple of 8), then the raw little-endian
    C-contiguous tensor data packed back to back in insertion order.
    """
    header = {}
    chunks = []
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _ST_DTYPES:
            raise TypeError(f"unsupported dtype {tensor.dtype} for {name}")
        st_dtype, np_dtype = _ST_DTYPES[tensor.dtype]
        data = tensor.detach().cpu().contiguous().numpy().astype(np_dtype).tobytes(order="C")
        header[name] = {
            "dtype": st_dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * ((-(8 + len(header_bytes))) % 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(chunks)


def write_safetensors(path, tensors):
    with open(path, "wb") as f:
        f.write(encode_safetensors(tensors))


def read_safetensors(path):
    """Reads a safetensors file; returns (ordered {name: tensor}, metadata).

    Validates that tensors are packed without gaps or overlaps and that the
    data section is exactly consumed.
    """
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: file too short")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if (8 + header_len) % 8 != 0:
        raise ValueError(f"{path}: header not 8-byte aligned")
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    data = blob[8 + header_len:]
    metadata = header.pop("__metadata__", None)
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    expected_begin = 0
    for name, info in entries:
        begin, end = info["data_offsets"]
        if begin != expected_begin:
            raise ValueError(f"{path}: gap/overlap before {name}")
        expected_begin = end
    if expected_begin != len(data):
        raise ValueError(f"{path}: data section size mismatch")
    tensors = {}
    for name, info in header.items():  # keep the header's order
        begin, end = info["data_offsets"]
        np_dtype = _ST_NUMPY[info["dtype"]]
        shape = info["shape"]
        count = int(np.prod(shape)) if shape else 1
        if (end - begin) != count * np_dtype.itemsize:
            raise ValueError(f"{path}: size mismatch for {name}")
        array = np.frombuffer(data[begin:end], dtype=np_dtype).reshape(shape)
        tensors[name] = torch.from_numpy(array.astype(np_dtype.newbyteorder("=")).copy())
    return tensors, metadata


def check_safetensors_roundtrip(path, expected):
    """Asserts that `path` reads back exactly the tensors in `expected`."""
    got, metadata = read_safetensors(path)
    assert metadata == {"format": "pt"}, f"{path}: bad metadata {metadata}"
    assert list(got.keys()) == list(expected.keys()), f"{path}: key order mismatch"
    for name, tensor in expected.items():
        g = got[name]
        assert g.dtype == tensor.dtype, f"{path}:{name}: dtype {g.dtype} != {tensor.dtype}"
        assert tuple(g.shape) == tuple(tensor.shape), f"{path}:{name}: shape mismatch"
        assert torch.equal(g, tensor.contiguous()), f"{path}:{name}: values differ"


# ---------------------------------------------------------------------------
# Random parameter creation.
# ---------------------------------------------------------------------------

def _init(kind, shape):
    """Draws one tensor from the global torch RNG according to its kind."""
    if kind == "weight":  # Linear/Conv1D weights and embeddings
        return torch.normal(0.0, WEIGHT_STD, size=shape)
    if kind == "bias":
        return torch.normal(0.0, BIAS_STD, size=shape)
    if kind == "ln_weight":
        return 1.0 + torch.normal(0.0, LN_STD, size=shape)
    if kind == "ln_bias":
        return torch.normal(0.0, LN_STD, size=shape)
    if kind == "lora":
        return torch.normal(0.0, LORA_STD, size=shape)
    raise ValueError(kind)


def make_params(spec):
    """spec: list of (name, shape, kind) -> ordered dict of float32 tensors."""
    return {name: _init(kind, shape).to(torch.float32).contiguous() for name, shape, kind in spec}


def _linear_spec(prefix, n_in, n_out):
    """nn.Linear: weight stored [out, in]."""
    return [(f"{prefix}.weight", (n_out, n_in), "weight"), (f"{prefix}.bias", (n_out,), "bias")]


def _conv1d_spec(prefix, n_in, n_out):
    """GPT-2 Conv1D: weight stored [in, out]."""
    return [(f"{prefix}.weight", (n_in, n_out), "weight"), (f"{prefix}.bias", (n_out,), "bias")]


def _layernorm_spec(prefix, n):
    return [(f"{prefix}.weight", (n,), "ln_weight"), (f"{prefix}.bias", (n,), "ln_bias")]


def roberta_param_spec(cfg):
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    spec = [
        ("roberta.embeddings.word_embeddings.weight", (cfg["vocab_size"], H), "weight"),
        ("roberta.embeddings.position_embeddings.weight", (cfg["max_position_embeddings"], H), "weight"),
        ("roberta.embeddings.token_type_embeddings.weight", (cfg["type_vocab_size"], H), "weight"),
    ]
    spec += _layernorm_spec("roberta.embeddings.LayerNorm", H)
    for i in range(cfg["num_hidden_layers"]):
        p = f"roberta.encoder.layer.{i}"
        for proj in ("query", "key", "value"):
            spec += _linear_spec(f"{p}.attention.self.{proj}", H, H)
        spec += _linear_spec(f"{p}.attention.output.dense", H, H)
        spec += _layernorm_spec(f"{p}.attention.output.LayerNorm", H)
        spec += _linear_spec(f"{p}.intermediate.dense", H, I)
        spec += _linear_spec(f"{p}.output.dense", I, H)
        spec += _layernorm_spec(f"{p}.output.LayerNorm", H)
    spec += _linear_spec("roberta.pooler.dense", H, H)
    spec += _linear_spec("classifier.dense", H, H)
    spec += _linear_spec("classifier.out_proj", H, cfg["num_labels"])
    return spec


def gpt2_param_spec(cfg):
    H = cfg["n_embd"]
    inner = cfg["n_inner"] if cfg["n_inner"] is not None else 4 * H
    spec = [
        ("transformer.wte.weight", (cfg["vocab_size"], H), "weight"),
        ("transformer.wpe.weight", (cfg["n_positions"], H), "weight"),
    ]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}"
        spec += _layernorm_spec(f"{p}.ln_1", H)
        spec += _conv1d_spec(f"{p}.attn.c_attn", H, 3 * H)
        spec += _conv1d_spec(f"{p}.attn.c_proj", H, H)
        spec += _layernorm_spec(f"{p}.ln_2", H)
        spec += _conv1d_spec(f"{p}.mlp.c_fc", H, inner)
        spec += _conv1d_spec(f"{p}.mlp.c_proj", inner, H)
    spec += _layernorm_spec("transformer.ln_f", H)
    # lm_head.weight is tied to transformer.wte.weight and not stored.
    return spec


def roberta_lora_spec(cfg):
    """PEFT LoRA on query/value: lora_A [r, in], lora_B [out, r]."""
    H = cfg["hidden_size"]
    spec = []
    for i in range(cfg["num_hidden_layers"]):
        for proj in ("query", "value"):
            p = f"base_model.model.roberta.encoder.layer.{i}.attention.self.{proj}"
            spec.append((f"{p}.lora_A.weight", (LORA_R, H), "lora"))
            spec.append((f"{p}.lora_B.weight", (H, LORA_R), "lora"))
    return spec


def gpt2_lora_spec(cfg):
    """PEFT LoRA on c_attn and c_fc (fan_in_fan_out): A [r, in], B [out, r]."""
    H = cfg["n_embd"]
    inner = cfg["n_inner"] if cfg["n_inner"] is not None else 4 * H
    spec = []
    for i in range(cfg["n_layer"]):
        for module, n_out in (("attn.c_attn", 3 * H), ("mlp.c_fc", inner)):
            p = f"base_model.model.transformer.h.{i}.{module}"
            spec.append((f"{p}.lora_A.weight", (LORA_R, H), "lora"))
            spec.append((f"{p}.lora_B.weight", (n_out, LORA_R), "lora"))
    return spec


def lora_pair(lora, module_name):
    """Returns (A, B) for `module_name` (a base-model key prefix) or None."""
    if lora is None:
        return None
    prefix = f"base_model.model.{module_name}"
    key_a = f"{prefix}.lora_A.weight"
    if key_a not in lora:
        return None
    return lora[key_a], lora[f"{prefix}.lora_B.weight"]


# ---------------------------------------------------------------------------
# Shared building blocks.
# ---------------------------------------------------------------------------

def linear(x, weight, bias, lora_ab=None):
    """nn.Linear: y = x W^T + b, W stored [out, in].

    With LoRA (PEFT, unmerged): y += scaling * (x A^T) B^T, which equals using
    the effective weight W + scaling * B @ A.
    """
    y = torch.matmul(x, weight.t()) + bias
    if lora_ab is not None:
        a, b = lora_ab
        y = y + torch.matmul(torch.matmul(x, a.t()), b.t()) * LORA_SCALING
    return y


def conv1d(x, weight, bias, lora_ab=None):
    """GPT-2 Conv1D: y = x W + b, W stored [in, out].

    With LoRA (PEFT, fan_in_fan_out=True, unmerged): y += scaling * (x A^T) B^T,
    which equals using the effective weight W + scaling * (B @ A)^T.
    """
    y = torch.matmul(x, weight) + bias
    if lora_ab is not None:
        a, b = lora_ab
        y = y + torch.matmul(torch.matmul(x, a.t()), b.t()) * LORA_SCALING
    return y


def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last dimension (biased variance)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def gelu_exact(x):
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))."""
    return x * 0.5 * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))


def gelu_new(x):
    """GPT-2 tanh approximation of GELU."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def split_heads(x, n_heads):
    """[B, T, H] -> [B, n_heads, T, H / n_heads]."""
    b, t, h = x.shape
    return x.view(b, t, n_heads, h // n_heads).permute(0, 2, 1, 3)


def merge_heads(x):
    """[B, n_heads, T, d] -> [B, T, n_heads * d]."""
    b, n, t, d = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(b, t, n * d)


def padding_mask_bias(attention_mask):
    """[B, T] 0/1 mask -> additive [B, 1, 1, T] bias: (1 - mask) * finfo.min."""
    m = attention_mask.to(torch.float32)[:, None, None, :]
    return (1.0 - m) * MASK_MIN


def attention_core(q, k, v, additive_bias, causal=False):
    """Scaled dot-product attention on [B, heads, T, d] tensors."""
    d = q.shape[-1]
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
    if causal:
        t = q.shape[-2]
        allowed = torch.tril(torch.ones(t, t, dtype=torch.bool))
        # Replace (not add) future positions, like HF's torch.where.
        scores = torch.where(allowed, scores, torch.full_like(scores, MASK_MIN))
    scores = scores + additive_bias
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v)


# ---------------------------------------------------------------------------
# RoBERTa.
# ---------------------------------------------------------------------------

def roberta_position_ids(input_ids, pad_token_id):
    """Real tokens get pad+1, pad+2, ...; padding tokens get pad_token_id."""
    mask = (input_ids != pad_token_id).to(torch.int64)
    return torch.cumsum(mask, dim=1) * mask + pad_token_id


def roberta_embeddings(p, cfg, input_ids):
    pos = roberta_position_ids(input_ids, cfg["pad_token_id"])
    tok_type = torch.zeros_like(input_ids)
    emb = (p["roberta.embeddings.word_embeddings.weight"][input_ids]
           + p["roberta.embeddings.position_embeddings.weight"][pos]
           + p["roberta.embeddings.token_type_embeddings.weight"][tok_type])
    return layer_norm(emb, p["roberta.embeddings.LayerNorm.weight"],
                      p["roberta.embeddings.LayerNorm.bias"], cfg["layer_norm_eps"])


def roberta_layer(p, cfg, i, x, mask_bias, lora):
    pre = f"roberta.encoder.layer.{i}"
    eps = cfg["layer_norm_eps"]
    n_heads = cfg["num_attention_heads"]

    def lin(name, inp):
        return linear(inp, p[f"{pre}.{name}.weight"], p[f"{pre}.{name}.bias"],
                      lora_pair(lora, f"{pre}.{name}"))

    # Self-attention.
    q = split_heads(lin("attention.self.query", x), n_heads)
    k = split_heads(lin("attention.self.key", x), n_heads)
    v = split_heads(lin("attention.self.value", x), n_heads)
    ctx = merge_heads(attention_core(q, k, v, mask_bias, causal=False))
    attn_out = layer_norm(lin("attention.output.dense", ctx) + x,
                          p[f"{pre}.attention.output.LayerNorm.weight"],
                          p[f"{pre}.attention.output.LayerNorm.bias"], eps)
    # Feed-forward.
    inter = gelu_exact(lin("intermediate.dense", attn_out))
    return layer_norm(lin("output.dense", inter) + attn_out,
                      p[f"{pre}.output.LayerNorm.weight"], p[f"{pre}.output.LayerNorm.bias"], eps)


def roberta_forward(p, cfg, input_ids, attention_mask, lora=None):
    """RobertaForSequenceClassification (+ pooler) in eval mode."""
    x = roberta_embeddings(p, cfg, input_ids)
    mask_bias = padding_mask_bias(attention_mask)
    for i in range(cfg["num_hidden_layers"]):
        x = roberta_layer(p, cfg, i, x, mask_bias, lora)
    last_hidden = x
    first = last_hidden[:, 0]
    pooled = torch.tanh(linear(first, p["roberta.pooler.dense.weight"], p["roberta.pooler.dense.bias"]))
    # RobertaClassificationHead (dropouts are identity in eval mode).
    h = torch.tanh(linear(first, p["classifier.dense.weight"], p["classifier.dense.bias"]))
    logits = linear(h, p["classifier.out_proj.weight"], p["classifier.out_proj.bias"])
    return {"last_hidden_state": last_hidden, "pooler_output": pooled, "logits": logits}


def roberta_inputs(cfg):
    """Row 0: bos, 10 ids, eos (no padding). Row 1: bos, 6 ids, eos, 4 x pad."""
    bos, eos, pad = cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]
    row0_body = torch.randint(3, cfg["vocab_size"], (10,), dtype=torch.int64)
    row1_body = torch.randint(3, cfg["vocab_size"], (6,), dtype=torch.int64)
    row0 = torch.cat([torch.tensor([bos]), row0_body, torch.tensor([eos])])
    row1 = torch.cat([torch.tensor([bos]), row1_body, torch.tensor([eos]),
                      torch.full((4,), pad, dtype=torch.int64)])
    input_ids = torch.stack([row0, row1]).to(torch.int64)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 8:] = 0
    return input_ids, attention_mask


# ---------------------------------------------------------------------------
# GPT-2.
# ---------------------------------------------------------------------------

def gpt2_block(p, cfg, i, h, mask_bias, lora, qv=None):
    pre = f"transformer.h.{i}"
    eps = cfg["layer_norm_epsilon"]
    H, n_heads = cfg["n_embd"], cfg["n_head"]

    def conv(name, inp):
        return conv1d(inp, p[f"{pre}.{name}.weight"], p[f"{pre}.{name}.bias"],
                      lora_pair(lora, f"{pre}.{name}"))

    # Attention sub-block (pre-LN).
    x = layer_norm(h, p[f"{pre}.ln_1.weight"], p[f"{pre}.ln_1.bias"], eps)
    qkv = conv("attn.c_attn", x)
    q, k, v = qkv.split(H, dim=-1)
    if qv is not None:
        # loralib's MergedLinear with enable_lora=[True, False, True]: separate
        # low-rank updates of the query and value thirds of the fused c_attn.
        a_q, b_q, a_v, b_v = qv[i]
        q = q + torch.matmul(torch.matmul(x, a_q.t()), b_q.t()) * LORA_SCALING
        v = v + torch.matmul(torch.matmul(x, a_v.t()), b_v.t()) * LORA_SCALING
    ctx = attention_core(split_heads(q, n_heads), split_heads(k, n_heads),
                         split_heads(v, n_heads), mask_bias, causal=True)
    h = h + conv("attn.c_proj", merge_heads(ctx))
    # MLP sub-block (pre-LN).
    x = layer_norm(h, p[f"{pre}.ln_2.weight"], p[f"{pre}.ln_2.bias"], eps)
    h = h + conv("mlp.c_proj", gelu_new(conv("mlp.c_fc", x)))
    return h


def gpt2_forward(p, cfg, input_ids, attention_mask, lora=None, qv=None):
    """GPT2LMHeadModel in eval mode."""
    t = input_ids.shape[1]
    position_ids = torch.arange(t, dtype=torch.int64)[None, :].expand_as(input_ids)
    h = p["transformer.wte.weight"][input_ids] + p["transformer.wpe.weight"][position_ids]
    mask_bias = padding_mask_bias(attention_mask)
    for i in range(cfg["n_layer"]):
        h = gpt2_block(p, cfg, i, h, mask_bias, lora, qv)
    h = layer_norm(h, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], cfg["layer_norm_epsilon"])
    logits = torch.matmul(h, p["transformer.wte.weight"].t())  # tied lm_head, no bias
    return {"logits": logits, "last_hidden_state": h}


def gpt2_inputs(cfg):
    """Row 0: 10 ids, mask all 1. Row 1: 10 ids, mask 0 on the last 3."""
    input_ids = torch.randint(0, cfg["vocab_size"], (2, 10), dtype=torch.int64)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    return input_ids, attention_mask


# ---------------------------------------------------------------------------
# Model assembly and output.
# ---------------------------------------------------------------------------

ARCHS = {
    "roberta": dict(config=ROBERTA_CONFIG, spec=roberta_param_spec, inputs=roberta_inputs,
                    lora_spec=roberta_lora_spec, forward=roberta_forward,
                    adapter_config=ROBERTA_ADAPTER_CONFIG,
                    outputs=("last_hidden_state", "pooler_output", "logits")),
    "gpt2": dict(config=GPT2_CONFIG, spec=gpt2_param_spec, inputs=gpt2_inputs,
                 lora_spec=gpt2_lora_spec, forward=gpt2_forward,
                 adapter_config=GPT2_ADAPTER_CONFIG,
                 outputs=("logits", "last_hidden_state")),
}


def setup_torch():
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)


def build(arch, seed, use_lora):
    """Draws weights, inputs and (optionally) LoRA weights, in that order,
    from the seeded global RNG, and runs the forward pass.

    Returns dict with config, params, input_ids, attention_mask, lora
    (or None), adapter (tensors to save, or None) and outputs.
    """
    a = ARCHS[arch]
    cfg = a["config"]
    torch.manual_seed(seed)
    params = make_params(a["spec"](cfg))
    input_ids, attention_mask = a["inputs"](cfg)
    lora = make_params(a["lora_spec"](cfg)) if use_lora else None
    outputs = a["forward"](params, cfg, input_ids, attention_mask, lora)
    outputs = {k: outputs[k].to(torch.float32).contiguous() for k in a["outputs"]}

    adapter = None
    if use_lora:
        adapter = dict(lora)
        for module in a["adapter_config"]["modules_to_save"] or []:
            for key, value in params.items():
                if key.startswith(module + "."):
                    adapter[f"base_model.model.{key}"] = value
    return dict(config=cfg, params=params, input_ids=input_ids, attention_mask=attention_mask,
                lora=lora, adapter=adapter, outputs=outputs)


def build_gpt2_qv(seed):
    """GPT-2 with loralib-style LoRA on the query and value thirds of c_attn
    only (r = LORA_R, same scaling), drawn after the base weights and inputs.
    PEFT has no form for this; the weights are written in lora-sweep's own
    layout: lora_A = [A_q; A_v] ([2r, H]) and lora_B = [B_q; B_v] ([2H, r]).
    """
    cfg = GPT2_CONFIG
    H = cfg["n_embd"]
    torch.manual_seed(seed)
    params = make_params(gpt2_param_spec(cfg))
    input_ids, attention_mask = gpt2_inputs(cfg)
    qv, layout = [], {}
    for i in range(cfg["n_layer"]):
        a_q = _init("lora", (LORA_R, H))
        b_q = _init("lora", (H, LORA_R))
        a_v = _init("lora", (LORA_R, H))
        b_v = _init("lora", (H, LORA_R))
        qv.append((a_q, b_q, a_v, b_v))
        prefix = f"transformer.h.{i}.attn.c_attn"
        layout[f"{prefix}.lora_A"] = torch.cat([a_q, a_v], 0).contiguous()
        layout[f"{prefix}.lora_B"] = torch.cat([b_q, b_v], 0).contiguous()
    outputs = gpt2_forward(params, cfg, input_ids, attention_mask, None, qv)
    outputs = {k: outputs[k].to(torch.float32).contiguous()
               for k in ("logits", "last_hidden_state")}
    return dict(config=cfg, params=params, input_ids=input_ids,
                attention_mask=attention_mask, lora=None, adapter=None,
                outputs=outputs, qv_layout=layout)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_all(arch, result, out_dir):
    """Writes all files and checks that the safetensors files read back."""
    os.makedirs(out_dir, exist_ok=True)
    files = {
        "model.safetensors": result["params"],
        "inputs.safetensors": {"input_ids": result["input_ids"],
                               "attention_mask": result["attention_mask"]},
        "outputs.safetensors": result["outputs"],
    }
    if result["adapter"] is not None:
        files["adapter_model.safetensors"] = result["adapter"]
        write_json(os.path.join(out_dir, "adapter_config.json"), ARCHS[arch]["adapter_config"])
    write_json(os.path.join(out_dir, "config.json"), result["config"])
    if result.get("qv_layout") is not None:
        files["lora_qv.safetensors"] = result["qv_layout"]
    for name, tensors in files.items():
        write_safetensors(os.path.join(out_dir, name), tensors)
    # Self-check: every file reads back bit-identically.
    for name, tensors in files.items():
        check_safetensors_roundtrip(os.path.join(out_dir, name), tensors)


# ---------------------------------------------------------------------------
# Self-test.
# ---------------------------------------------------------------------------

def _max_diff(a, b):
    return float((a - b).abs().max())


def selftest_roberta_padding(seed):
    """Changing ids at padded positions of row 1 must not change row 1's
    outputs at non-padded positions (nor its pooled output / logits)."""
    ok = True
    cfg = ROBERTA_CONFIG
    for use_lora in (False, True):
        r = build("roberta", seed, use_lora)
        ids2 = r["input_ids"].clone()
        ids2[1, 8:] = torch.tensor([5, 50, 77, 119])  # padded positions only
        out2 = roberta_forward(r["params"], cfg, ids2, r["attention_mask"], r["lora"])
        o1 = r["outputs"]
        d_hidden = _max_diff(o1["last_hidden_state"][1, :8], out2["last_hidden_state"][1, :8])
        d_pool = _max_diff(o1["pooler_output"][1], out2["pooler_output"][1])
        d_logit = _max_diff(o1["logits"][1], out2["logits"][1])
        d_row0 = _max_diff(o1["last_hidden_state"][0], out2["last_hidden_state"][0])
        d_padded = _max_diff(o1["last_hidden_state"][1, 8:], out2["last_hidden_state"][1, 8:])
        good = max(d_hidden, d_pool, d_logit, d_row0) <= 1e-6 and d_padded > 1e-3
        ok &= good
        print(f"[{'PASS' if good else 'FAIL'}] roberta padding (lora={use_lora}): "
              f"non-padded diff {d_hidden:.2e}, pooler {d_pool:.2e}, logits {d_logit:.2e}, "
              f"row0 {d_row0:.2e}, padded positions changed by {d_padded:.2e}")
    return ok


def selftest_gpt2_causality(seed):
    """Changing a later token must not change earlier positions' outputs."""
    ok = True
    cfg = GPT2_CONFIG
    for use_lora in (False, True):
        r = build("gpt2", seed, use_lora)
        for row, pos in ((0, 5), (1, 4), (1, 8)):
            ids2 = r["input_ids"].clone()
            ids2[row, pos] = (ids2[row, pos] + 37) % cfg["vocab_size"]
            out2 = gpt2_forward(r["params"], cfg, ids2, r["attention_mask"], r["lora"])
            o1 = r["outputs"]["logits"]
            d_before = _max_diff(o1[row, :pos], out2["logits"][row, :pos])
            d_at = _max_diff(o1[row, pos], out2["logits"][row, pos])
            d_other = _max_diff(o1[1 - row], out2["logits"][1 - row])
            good = d_before <= 1e-6 and d_other <= 1e-6 and d_at > 1e-3
            ok &= good
            print(f"[{'PASS' if good else 'FAIL'}] gpt2 causality (lora={use_lora}, row {row}, "
                  f"pos {pos}): earlier diff {d_before:.2e}, other row {d_other:.2e}, "
                  f"changed position diff {d_at:.2e}")
    return ok


def selftest_against_torch_modules(seed):
    """Cross-checks the hand-written blocks against torch.nn building blocks
    (an independent implementation of the same maths)."""
    ok = True
    # Activations.
    x = torch.linspace(-6, 6, 1001)
    d1 = _max_diff(gelu_exact(x), F.gelu(x))
    d2 = _max_diff(gelu_new(x), F.gelu(x, approximate="tanh"))
    good = d1 <= 1e-6 and d2 <= 1e-6
    ok &= good
    print(f"[{'PASS' if good else 'FAIL'}] gelu vs torch: exact {d1:.2e}, tanh {d2:.2e}")

    # RoBERTa encoder layer 0 vs nn.TransformerEncoderLayer (post-LN, gelu).
    cfg = ROBERTA_CONFIG
    r = build("roberta", seed, False)
    p = r["params"]
    H = cfg["hidden_size"]
    x = roberta_embeddings(p, cfg, r["input_ids"])
    mine = roberta_layer(p, cfg, 0, x, padding_mask_bias(r["attention_mask"]), None)
    ref = torch.nn.TransformerEncoderLayer(H, cfg["num_attention_heads"], cfg["intermediate_size"],
                                           dropout=0.0, activation="gelu",
                                           layer_norm_eps=cfg["layer_norm_eps"], batch_first=True)
    pre = "roberta.encoder.layer.0"
    ref.self_attn.in_proj_weight.copy_(torch.cat([p[f"{pre}.attention.self.{n}.weight"]
                                                  for n in ("query", "key", "value")]))
    ref.self_attn.in_proj_bias.copy_(torch.cat([p[f"{pre}.attention.self.{n}.bias"]
                                                for n in ("query", "key", "value")]))
    ref.self_attn.out_proj.weight.copy_(p[f"{pre}.attention.output.dense.weight"])
    ref.self_attn.out_proj.bias.copy_(p[f"{pre}.attention.output.dense.bias"])
    ref.norm1.weight.copy_(p[f"{pre}.attention.output.LayerNorm.weight"])
    ref.norm1.bias.copy_(p[f"{pre}.attention.output.LayerNorm.bias"])
    ref.linear1.weight.copy_(p[f"{pre}.intermediate.dense.weight"])
    ref.linear1.bias.copy_(p[f"{pre}.intermediate.dense.bias"])
    ref.linear2.weight.copy_(p[f"{pre}.output.dense.weight"])
    ref.linear2.bias.copy_(p[f"{pre}.output.dense.bias"])
    ref.norm2.weight.copy_(p[f"{pre}.output.LayerNorm.weight"])
    ref.norm2.bias.copy_(p[f"{pre}.output.LayerNorm.bias"])
    ref.train()  # avoid the inference fast path; dropout=0 makes this exact
    theirs = ref(x, src_key_padding_mask=(r["attention_mask"] == 0))
    valid = r["attention_mask"].bool()
    d = _max_diff(mine[valid], theirs[valid])
    good = d <= 1e-5
    ok &= good
    print(f"[{'PASS' if good else 'FAIL'}] roberta layer vs nn.TransformerEncoderLayer: {d:.2e}")

    # GPT-2 attention of block 0 vs nn.MultiheadAttention with a causal mask.
    cfg = GPT2_CONFIG
    r = build("gpt2", seed, False)
    p = r["params"]
    H, T = cfg["n_embd"], r["input_ids"].shape[1]
    pre = "transformer.h.0"
    x = torch.randn(2, T, H)
    qkv = conv1d(x, p[f"{pre}.attn.c_attn.weight"], p[f"{pre}.attn.c_attn.bias"])
    q, k, v = qkv.split(H, dim=-1)
    ctx = attention_core(split_heads(q, cfg["n_head"]), split_heads(k, cfg["n_head"]),
                         split_heads(v, cfg["n_head"]), padding_mask_bias(r["attention_mask"]),
                         causal=True)
    mine = conv1d(merge_heads(ctx), p[f"{pre}.attn.c_proj.weight"], p[f"{pre}.attn.c_proj.bias"])
    mha = torch.nn.MultiheadAttention(H, cfg["n_head"], dropout=0.0, batch_first=True)
    mha.in_proj_weight.copy_(p[f"{pre}.attn.c_attn.weight"].t())  # Conv1D [in,out] -> [out,in]
    mha.in_proj_bias.copy_(p[f"{pre}.attn.c_attn.bias"])
    mha.out_proj.weight.copy_(p[f"{pre}.attn.c_proj.weight"].t())
    mha.out_proj.bias.copy_(p[f"{pre}.attn.c_proj.bias"])
    mha.train()
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    theirs, _ = mha(x, x, x, attn_mask=causal, key_padding_mask=(r["attention_mask"] == 0),
                    need_weights=False)
    valid = r["attention_mask"].bool()
    d = _max_diff(mine[valid], theirs[valid])
    good = d <= 1e-5
    ok &= good
    print(f"[{'PASS' if good else 'FAIL'}] gpt2 attention vs nn.MultiheadAttention: {d:.2e}")

    # LoRA: the unmerged path equals the merged effective weight.
    a, b = torch.randn(LORA_R, H), torch.randn(3 * H, LORA_R)
    w, bias = p[f"{pre}.attn.c_attn.weight"], p[f"{pre}.attn.c_attn.bias"]
    d_conv = _max_diff(conv1d(x, w, bias, (a, b)), conv1d(x, w + LORA_SCALING * (b @ a).t(), bias))
    wl = w.t().contiguous()  # treat as an nn.Linear weight [out, in]
    d_lin = _max_diff(linear(x, wl, bias, (a, b)), linear(x, wl + LORA_SCALING * (b @ a), bias))
    good = d_conv <= 1e-4 and d_lin <= 1e-4
    ok &= good
    print(f"[{'PASS' if good else 'FAIL'}] lora unmerged vs merged: conv1d {d_conv:.2e}, "
          f"linear {d_lin:.2e}")
    return ok


def selftest_files(arch, seed):
    """Writes with/without LoRA twice; checks determinism, that the base
    files do not depend on --lora, and that LoRA changes the outputs."""
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {}
        for use_lora in (False, True):
            for rep in (0, 1):
                d = os.path.join(tmp, f"{arch}_lora{int(use_lora)}_{rep}")
                write_all(arch, build(arch, seed, use_lora), d)
                dirs[(use_lora, rep)] = d

        def read(d, name):
            with open(os.path.join(d, name), "rb") as f:
                return f.read()

        names = sorted(os.listdir(dirs[(True, 0)]))
        same = all(read(dirs[(l, 0)], n) == read(dirs[(l, 1)], n)
                   for l in (False, True) for n in sorted(os.listdir(dirs[(l, 0)])))
        ok &= same
        print(f"[{'PASS' if same else 'FAIL'}] {arch} deterministic files: {names}")
        base_same = all(read(dirs[(False, 0)], n) == read(dirs[(True, 0)], n)
                        for n in ("config.json", "model.safetensors", "inputs.safetensors"))
        ok &= base_same
        print(f"[{'PASS' if base_same else 'FAIL'}] {arch} base model/inputs independent of --lora")
        plain, _ = read_safetensors(os.path.join(dirs[(False, 0)], "outputs.safetensors"))
        adapted, _ = read_safetensors(os.path.join(dirs[(True, 0)], "outputs.safetensors"))
        diffs = {k: _max_diff(plain[k], adapted[k]) for k in plain}
        differ = all(v > 1e-2 for v in diffs.values())
        ok &= differ
        print(f"[{'PASS' if differ else 'FAIL'}] {arch} LoRA changes outputs: "
              + ", ".join(f"{k} {v:.3f}" for k, v in diffs.items()))
    return ok


def run_self_test(archs, seed):
    ok = True
    if "roberta" in archs:
        ok &= selftest_roberta_padding(seed)
    if "gpt2" in archs:
        ok &= selftest_gpt2_causality(seed)
    ok &= selftest_against_torch_modules(seed)
    for arch in archs:
        ok &= selftest_files(arch, seed)
    print("SELF-TEST", "PASSED" if ok else "FAILED")
    return ok


# ---------------------------------------------------------------------------
# Entry point.
# ---------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), help="model architecture")
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--lora", action="store_true", help="add a LoRA adapter and apply it")
    parser.add_argument("--lora-qv", action="store_true",
                        help="gpt2 only: LoRA on the query and value thirds of c_attn "
                             "(written as lora_qv.safetensors in lora-sweep's layout)")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed value (default 0)")
    parser.add_argument("--self-test", action="store_true",
                        help="run masking/causality/consistency checks (for --arch, or both); "
                             "exit non-zero on failure")
    args = parser.parse_args(argv)
    setup_torch()

    if args.self_test:
        archs = [args.arch] if args.arch else sorted(ARCHS)
        if not run_self_test(archs, args.seed):
            return 1
        if args.out is None:
            return 0
    if args.arch is None or args.out is None:
        parser.error("--arch and --out are required (unless only --self-test is given)")

    if args.lora_qv:
        if args.arch != "gpt2" or args.lora:
            parser.error("--lora-qv needs --arch gpt2 and no --lora")
        result = build_gpt2_qv(args.seed)
    else:
        result = build(args.arch, args.seed, args.lora)
    write_all(args.arch, result, args.out)  # asserts the files read back identically
    print(f"wrote {args.arch}{' + LoRA' if args.lora else ''} reference (seed {args.seed}) "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
