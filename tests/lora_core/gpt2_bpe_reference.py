#!/usr/bin/env python3
"""GPT-2's original byte-level BPE algorithm, written here for the tokenizer
agreement test: the pre-tokenisation pattern as published, run by Debian's
python3-regex (whose \\s, \\p{L} and \\p{N} are Unicode's), bytes_to_unicode,
and lowest-rank-first merges.

Usage: gpt2_bpe_reference.py ENCODER_JSON VOCAB_BPE LINES_JSON
Reads a JSON list of strings and prints a JSON list of id lists.
"""

import json
import sys

import regex

PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def byte_symbols():
    printable = (list(range(ord("!"), ord("~") + 1)) +
                 list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1)))
    symbols = {}
    extra = 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return symbols


def merge(word, ranks):
    word = list(word)
    while len(word) > 1:
        pairs = [(ranks.get((a, b)), i)
                 for i, (a, b) in enumerate(zip(word, word[1:]))]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            break
        _, index = min(pairs)
        first, second = word[index], word[index + 1]
        merged, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


def main():
    encoder_path, merges_path, lines_path = sys.argv[1:4]
    with open(encoder_path, encoding="utf-8") as f:
        encoder = json.load(f)
    with open(merges_path, encoding="utf-8") as f:
        lines = f.read().split("\n")[1:]
    ranks = {tuple(line.split(" ")): rank
             for rank, line in enumerate(l for l in lines if l)}
    symbols = byte_symbols()
    with open(lines_path, encoding="utf-8") as f:
        texts = json.load(f)
    out = []
    for text in texts:
        ids = []
        for piece in PATTERN.findall(text):
            mapped = "".join(symbols[b] for b in piece.encode("utf-8"))
            ids.extend(encoder[token] for token in merge(mapped, ranks))
        out.append(ids)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
