"""Benchmark: peak memory of one energy evaluation against the number of chains.

A synthetic BERT MLM with one layer, hidden 768, 12 heads, intermediate 3072 and the
BERT-base vocabulary size (30522), random weights (no download), scores C = 1, 4, 16
sequences of L = 128 tokens with every one of the 126 content positions free:

- ``energy``: ``MLMEnergy(mlm)(tokens)``, the energy alone. Rows go through the model
  in chunks of the row budget and the LM head runs only at each row's masked position,
  so the peak should not grow with C x L.
- ``energy + conditionals``: ``MLMEnergy.evaluate``, which also returns the masked
  conditionals over all proposable tokens at every free position, ``C x L x K``
  floats: what MH keeps as its cached proposals. This part grows with C by design.
- ``naive`` (C = 1 only): all L masked copies in one batch with the LM head over every
  position, as PLL scorers do. Its logits alone are ``L x L x V`` floats (2 GB at
  C = 1; 32 GB at C = 16, which this machine would not survive).

Each measurement runs in a fresh subprocess on the CPU. After building the model and a
warm-up evaluation, the process resets its resident-set high-water mark (writing 5 to
``/proc/self/clear_refs``, Linux), then reads ``VmHWM - VmRSS`` (the peak growth) from
``/proc/self/status`` after the timed call.

    python bench/memory.py --json bench/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _report import machine, write_json

LENGTH = 128
MIB = 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(kind: str, chains: int) -> dict[str, float]:
    """Peak resident growth (bytes) of one evaluation, in this process."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    from pyro_mlm import MaskedLM, MLMEnergy

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
    words = [f"w{i}" for i in range(config.vocab_size - 5)]
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    mlm = MaskedLM(BertForMaskedLM(config), BertTokenizer(vocab=vocab, do_lower_case=False))
    body = torch.randint(5, config.vocab_size, (chains, LENGTH - 2))
    cls = torch.full((chains, 1), vocab["[CLS]"])
    sep = torch.full((chains, 1), vocab["[SEP]"])
    tokens = torch.cat([cls, body, sep], dim=1)
    free = ~mlm.special_mask(tokens)
    energy = MLMEnergy(mlm)

    def naive() -> torch.Tensor:
        ids = tokens[0]
        positions = torch.arange(1, LENGTH - 1)
        rows = ids.repeat(len(positions), 1)
        rows[torch.arange(len(positions)), positions] = mlm.mask_token_id
        logits = mlm.model(input_ids=rows).logits  # [L-2, L, V]: the head everywhere
        logp = torch.log_softmax(logits[torch.arange(len(positions)), positions], -1)
        return -logp[torch.arange(len(positions)), ids[positions]].sum()

    calls = {
        "energy": lambda: energy(tokens),
        "energy + conditionals": lambda: energy.evaluate(tokens, free),
        "naive": naive,
    }
    call = calls[kind]
    with torch.inference_mode():
        energy(tokens[:1, :16])  # warm-up: allocator and thread pools
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        out = call()
        peak = _status_kib("VmHWM")
    held = sum(t.numel() * t.element_size() for t in (out if isinstance(out, tuple) else [out]))
    return {"peak_growth_bytes": (peak - before) * 1024.0, "result_bytes": float(held)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--json", default="bench/results/memory.json")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "CHAINS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return 0
    runs = [("energy", c) for c in args.chains]
    runs += [("energy + conditionals", c) for c in args.chains] + [("naive", 1)]
    rows = []
    for kind, chains in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(chains)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append({"kind": kind, "chains": chains, **json.loads(out.stdout.splitlines()[-1])})
    print(
        f"one evaluation, synthetic BERT (1 layer, hidden 768, vocab 30522), L = {LENGTH}, "
        "all content positions free, fp32 CPU"
    )
    print(f"{'kind':24} {'chains':>6} {'peak growth MiB':>16} {'vs 1 chain':>10}")
    for row in rows:
        base = next(r for r in rows if r["kind"] == row["kind"] and r["chains"] == 1)
        row["vs_one_chain"] = row["peak_growth_bytes"] / base["peak_growth_bytes"]
        print(
            f"{row['kind']:24} {row['chains']:6d} {row['peak_growth_bytes'] / MIB:16.1f} "
            f"{row['vs_one_chain']:9.2f}x"
        )
    energy_rows = [r for r in rows if r["kind"] == "energy"]
    spread = max(r["peak_growth_bytes"] for r in energy_rows) / min(
        r["peak_growth_bytes"] for r in energy_rows
    )
    print(f"energy alone: largest / smallest peak over chains {args.chains} = {spread:.2f}")
    result = {
        "machine": machine(),
        "length": LENGTH,
        "rows": rows,
        "energy_peak_spread": spread,
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
