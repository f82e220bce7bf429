"""``pyro-mlm optimize``: the lowest-energy sequences by simulated annealing (not a sampler)."""

from __future__ import annotations

import argparse
import csv
import sys

from pyro_mlm.cli.inputs import UsageError, read_sequences
from pyro_mlm.run.spec import RunSpec


def optimize(args: argparse.Namespace) -> int:
    import torch

    from pyro_mlm.cli.settings import flag, sampler_options
    from pyro_mlm.design.sites import fill_masked
    from pyro_mlm.energy import MLMEnergy
    from pyro_mlm.models.load import load_model, load_vocabulary, resolve_device
    from pyro_mlm.run.prepare import build_experts, prepare
    from pyro_mlm.run.progress import Progress
    from pyro_mlm.samplers.anneal import anneal, schedule
    from pyro_mlm.samplers.builder import assemble
    from pyro_mlm.target import Target

    device = resolve_device(args.device)
    if args.out:  # before the annealing, not after it
        import os

        parent = os.path.dirname(os.path.abspath(args.out))
        if os.path.isdir(args.out) or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise UsageError(
                f"--out {args.out}: cannot write it ({parent} is not a writable directory, or "
                "the name is a directory); give a CSV file in an existing directory"
            )
    texts = list(args.sequence or [])
    if args.sequences_file:
        texts += read_sequences(args.sequences_file)
    if not texts:
        raise UsageError("give a starting sequence (--sequence, --sequences-file)")
    chains = args.chains if args.chains is not None else (len(texts) if len(texts) > 1 else 4)
    if chains < 1 or args.sweeps < 1 or args.top < 1:
        raise UsageError("--chains, --sweeps and --top must be >= 1")
    if len(texts) not in (1, chains):  # the rule of pyro-mlm sample
        raise UsageError(f"{len(texts)} starting sequences for {chains} chains; give 1 or {chains}")
    temperatures = schedule(args.t_start, args.t_end, args.sweeps)
    if len(texts) == 1:
        texts = texts * chains
    kernel = args.kernel or "block"
    from pyro_mlm.samplers.options import ANNEALABLE

    if kernel not in ANNEALABLE:
        raise UsageError(f"--kernel {kernel} cannot be annealed; use {', '.join(ANNEALABLE)}")
    from pyro_mlm.cli.inputs import resolve_model

    args.model = resolve_model(args.model, texts[0])
    vocab = load_vocabulary(args.model)
    mask_text = str(vocab.tokenizer.mask_token)
    free = args.free or ("masked" if any(mask_text in t for t in texts) else "all")
    spec = RunSpec(
        model=args.model,
        sequences=tuple(texts),
        free=free,
        energy=args.energy,
        kernel=kernel,
        seed=args.seed,
        options=sampler_options(args, kernel),
        experts=tuple(args.expert or ()),
    ).validate()
    tokens, mask = prepare(spec, vocab, flag)  # checked before the weights load
    build_experts(spec, vocab, tokens, mask, weights=False)  # bad experts, before the weights
    from pyro_mlm.cli.threads import say_thread_note

    say_thread_note()
    mlm = load_model(args.model, device=device)
    tokens, mask = tokens.to(mlm.device), mask.to(mlm.device)
    generator = torch.Generator(device=mlm.device).manual_seed(args.seed)
    experts = build_experts(spec, mlm, tokens, mask, weights=True)
    target = Target(MLMEnergy(mlm, args.energy), experts)
    start = fill_masked(
        target.conditionals, tokens, (tokens == mlm.mask_token_id) & mask,
        mlm.proposable_ids, generator,
    )  # fmt: skip
    sampler = assemble(kernel, target, mask, spec.options)  # options checked by prepare
    bar = Progress(
        args.sweeps, enabled=not args.no_progress, desc=f"{mlm.name} anneal", unit="sweep"
    )
    found = anneal(
        sampler, start, temperatures, generator,
        on_sweep=lambda k, info: bar.update(1, {"T": f"{temperatures[k - 1]:.3g}"}),
    )  # fmt: skip
    bar.close()
    print(
        f"annealed {chains} chains over {args.sweeps} sweeps, T {args.t_start:g} -> "
        f"{args.t_end:g}: {len(found)} distinct sequences; the lowest {args.energy} energies "
        "(an optimiser's output, not samples from a distribution):"
    )
    region = mask[0].cpu()
    rows = []  # every distinct sequence visited, ranked (--out); --top of them printed
    for rank, f in enumerate(found, start=1):
        ids = torch.tensor(f.tokens)
        rows.append(
            {
                "rank": rank,
                "energy": round(f.energy, 4),
                "free_region": vocab.region_text(ids[region].tolist()),
                "sweep": f.sweep,
                "chain": f.chain,
                "sequence": mlm.decode(ids),
            }
        )
        if rank <= args.top:
            print(f"  {rank:>3}  {f.energy:9.3f}  {rows[-1]['free_region']}")
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.out}: all {len(rows)} distinct sequences, ranked", file=sys.stderr)
    return 0
