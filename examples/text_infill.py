"""Infill the masked words of a sentence with any text masked LM, sampled exactly with MH.

Every mask token in the sentence is a free position; the other words are fixed
context. The masks are first filled from the model's own conditionals, then
``MaskedMH`` samples the energy ``exp(-E)``; the script prints the most frequent
infills with their energies and the convergence summary.

Online (Hugging Face hub):

    python examples/text_infill.py --model bert-base-cased \\
        --sentence "The [MASK] sat on the [MASK] and looked at the [MASK]."

Offline, pass a local model directory (``save_pretrained``) as ``--model``.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import pyro
import torch
from pyro.infer import MCMC

from pyro_mlm import MaskedLM, MaskedMH, MLMEnergy, summary, to_inference_data
from pyro_mlm.design.sites import fill_masked, parse_free


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bert-base-cased", help="hub id or local directory")
    parser.add_argument(
        "--sentence", default="The [MASK] sat on the [MASK] and looked at the [MASK]."
    )
    parser.add_argument("--energy", choices=["norm", "raw"], default="norm")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        mlm = MaskedLM.from_pretrained(args.model)
        sentence = args.sentence.replace("[MASK]", str(mlm.tokenizer.mask_token))
        ids = mlm.encode(sentence)
        free = parse_free("masked", ids, mlm)
        energy = MLMEnergy(mlm, args.energy)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    pyro.set_rng_seed(args.seed)
    start = ids.repeat(args.chains, 1)
    start = fill_masked(energy.conditionals, start, free.expand_as(start), mlm.proposable_ids)
    kernel = MaskedMH(energy, free=free)
    mcmc = MCMC(
        kernel,
        num_samples=args.samples,
        warmup_steps=args.warmup,
        initial_params={"tokens": start},
        disable_progbar=bool(os.environ.get("CI")),
    )
    mcmc.run()
    idata = to_inference_data(mcmc)
    tokens = torch.as_tensor(idata["sequences"]["tokens"].values).reshape(-1, len(ids))
    energies = idata.posterior["energy"].values.reshape(-1)
    counts = collections.Counter(mlm.decode(row) for row in tokens)
    best = {}
    for row, e in zip(tokens, energies, strict=True):
        best.setdefault(mlm.decode(row), float(e))
    diag = kernel.diagnostics()
    print(f"{mlm}: {int(free.sum())} masked positions, {args.chains} chains x {args.samples}")
    print(
        f"acceptance rate {diag['acceptance rate']:.3f}, "
        f"novel acceptance rate {diag['novel acceptance rate']:.3f}\n"
    )
    print(summary(idata).to_string())
    print("\nmost frequent infills (share of draws, energy):")
    for text, count in counts.most_common(8):
        print(f"  {count / len(tokens):.3f}  E={best[text]:7.2f}  {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
