"""The exact single-mutant landscape (issue 38): every Delta E against an independent
E(mutant) - E(wild type) from the energy API, the masked marginal against the wild type's own
conditionals, forbidden mutants kept and flagged, labels in the run's numbering."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TRASTUZUMAB_VH, tiny_mlm

from pyro_mlm.energy import MLMEnergy
from pyro_mlm.landscape.compare import agreement
from pyro_mlm.landscape.heatmap import landscape_matrix, plot_landscape
from pyro_mlm.landscape.mutants import single_mutants
from pyro_mlm.target import Target

WILD = "a b c d e f g"
FREE = "2-5"
# float32 energies of <= 7 terms of size ~3: a difference of two such sums is good to ~1e-5;
# 1e-4 leaves room for the batched and the one-by-one passes summing in another order
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def peaky():
    """A tiny model whose conditionals depend strongly on the context (init 0.3), so the
    exact Delta E and the masked marginal differ."""
    return tiny_mlm(init_range=0.3)


def _independent(target: Target, wild: torch.Tensor, free: torch.Tensor, row) -> float:
    mutant = wild.clone()
    t = int(target.mlm.content_positions(wild)[row["position"] - 1])
    mutant[t] = target.mlm.tokenizer.convert_tokens_to_ids(row["mutant"])
    assert int(wild[t]) == target.mlm.tokenizer.convert_tokens_to_ids(row["wild_type"])
    return float(target(mutant, free) - target(wild, free))


@pytest.mark.parametrize("over", ["free", "all"])
@pytest.mark.parametrize("energy", ["norm", "raw"])
def test_delta_e_is_the_energy_difference_of_every_mutant(peaky, energy, over) -> None:
    target = Target(MLMEnergy(peaky, energy), over=over)
    table = single_mutants(target, WILD, FREE)
    wild = peaky.encode(WILD)
    free = torch.zeros_like(wild, dtype=torch.bool)
    free[peaky.content_positions(wild)[1:5]] = True
    assert len(table) == 4 * 7  # 4 positions x (8 words - the wild type)
    rows = table.to_dict("records")
    errors = [abs(_independent(target, wild, free, r) - r["delta_energy"]) for r in rows]
    assert max(errors) < TOLERANCE
    assert (table["delta_energy"] == table["delta_mlm"]).all()  # no experts
    # the context term (what the heuristic leaves out) is not negligible on this model, so
    # a Delta E read off the masked marginal alone would fail the check above
    context = (table["delta_mlm"] + table["masked_marginal"]).abs()
    assert context.max() > 0.05
    assert sorted(table["rank"]) == list(range(1, len(table) + 1))
    assert table.loc[table["rank"] == 1, "delta_energy"].item() == table["delta_energy"].min()


def test_the_masked_marginal_is_the_log_ratio_of_the_wild_types_conditionals(peaky) -> None:
    energy = MLMEnergy(peaky, "norm")
    table = single_mutants(energy, WILD, FREE)
    wild = peaky.encode(WILD)
    for row in table.to_dict("records"):
        t = int(peaky.content_positions(wild)[row["position"] - 1])
        with torch.no_grad():
            scores = peaky.masked_logits(
                _masked(wild, t, peaky)[None], peaky.attention_mask(wild[None]), torch.tensor([t])
            )[0]
        log_p = torch.log_softmax(scores, -1)
        ids = peaky.tokenizer.convert_tokens_to_ids([row["mutant"], row["wild_type"]])
        expected = float(log_p[ids[0]] - log_p[ids[1]])
        assert row["masked_marginal"] == pytest.approx(expected, abs=1e-5)


def _masked(tokens: torch.Tensor, t: int, mlm) -> torch.Tensor:
    out = tokens.clone()
    out[t] = mlm.mask_token_id
    return out


def test_a_forbidden_mutant_is_kept_and_flagged(peaky) -> None:
    c = peaky.tokenizer.convert_tokens_to_ids("c")

    def no_c_at_2(tokens: torch.Tensor) -> torch.Tensor:  # a hard expert of the user's own
        return torch.where(tokens[:, 2] == c, math.inf, 0.0)

    soft = lambda tokens: (tokens == c).sum(-1).float()  # noqa: E731
    target = Target(MLMEnergy(peaky), [no_c_at_2, soft])
    table = single_mutants(target, WILD, FREE)
    forbidden = table[table["forbidden"]]
    assert list(forbidden["mutation"]) == ["b2c"]  # token 2 is residue 2, wild type b
    assert forbidden["delta_energy"].item() == math.inf
    assert math.isfinite(forbidden["delta_mlm"].item())
    assert forbidden["rank"].item() == len(table)  # last
    allowed = table[~table["forbidden"]]
    gained = allowed["mutant"].eq("c").astype(float) - allowed["wild_type"].eq("c").astype(float)
    assert (allowed["expert_2"] == gained).all()  # the soft expert's change, per mutant
    total = allowed["delta_mlm"] + allowed["expert_no_c_at_2"] + allowed["expert_2"]
    assert (allowed["delta_energy"] - total).abs().max() < 1e-5


def test_a_forbidden_wild_type_is_refused(peaky) -> None:
    target = Target(MLMEnergy(peaky), [lambda tokens: torch.full(tokens.shape[:1], math.inf)])
    with pytest.raises(ValueError, match="forbids the wild type itself"):
        single_mutants(target, WILD, FREE)


def test_a_masked_wild_type_is_refused(peaky) -> None:
    with pytest.raises(ValueError, match="never proposes"):
        single_mutants(MLMEnergy(peaky), "a b [MASK] d e f g", FREE)


def test_agreement_counts_the_top_n_and_ranks() -> None:
    rows = [{"delta_mlm": -float(k), "masked_marginal": float(k)} for k in range(10)]
    assert agreement(rows, top=3) == {"spearman": 1.0, "overlap": 1.0, "top": 3}
    reverse = [{"delta_mlm": float(k), "masked_marginal": float(k)} for k in range(10)]
    assert agreement(reverse, top=3) == {"spearman": -1.0, "overlap": 0.0, "top": 3}


def test_the_heatmap_puts_each_mutant_in_its_cell(peaky, tmp_path) -> None:
    c = peaky.tokenizer.convert_tokens_to_ids("c")
    target = Target(MLMEnergy(peaky), [lambda x: torch.where(x[:, 2] == c, math.inf, 0.0)])
    rows = single_mutants(target, WILD, FREE).to_dict("records")
    tokens = list("abcdefgh")
    values, forbidden, sites = landscape_matrix(rows, tokens)
    assert [s["wild_type"] for s in sites] == ["b", "c", "d", "e"]
    for p, site in enumerate(sites):  # the wild type's cell is empty, every other filled
        assert math.isnan(values[tokens.index(site["wild_type"]), p])
        assert sum(math.isnan(v) for v in values[:, p]) == 1
    assert forbidden.sum() == 1 and forbidden[tokens.index("c"), 0]
    row = next(r for r in rows if r["mutation"] == "b2d")
    assert values[tokens.index("d"), 0] == row["delta_energy"]
    path = plot_landscape(rows, tokens, str(tmp_path / "heatmap.png"))
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration  # ANARCI
def test_labels_are_the_schemes_numbers_and_regions() -> None:
    from pyro_mlm.design.numbering import anarci_available

    if not anarci_available():
        pytest.skip("ANARCI or pyhmmer missing")
    protein = tiny_mlm(words=list("ACDEFGHIKLMNPQRSTVWY"), split=list, max_positions=160)
    table = single_mutants(MLMEnergy(protein), TRASTUZUMAB_VH, "cdrh3")
    sites = table.drop_duplicates("position")
    assert list(sites["label"]) == [str(n) for n in range(105, 118)]
    assert set(sites["region"]) == {"CDR-H3"}
    assert sites["mutation"].iloc[0].startswith("S105")
    kabat = single_mutants(MLMEnergy(protein), TRASTUZUMAB_VH, "cdrh3", numbering="kabat")
    first = kabat.drop_duplicates("position")
    assert first["label"].iloc[0] == "95" and first["label"].iloc[-1] == "102"  # Kabat's H3
    assert set(first["region"]) == {"CDR-H3"}
    whole = single_mutants(MLMEnergy(protein), TRASTUZUMAB_VH[:30], "25-30").drop_duplicates(
        "position"
    )  # ranges: residue numbers (a fragment ANARCI cannot number keeps them)
    assert list(whole["label"]) == [str(n) for n in range(25, 31)]


def test_a_sequence_longer_than_the_model_is_refused(peaky) -> None:
    with pytest.raises(ValueError, match="longer|length|positions"):
        single_mutants(MLMEnergy(peaky), " ".join("a" * 40), "2-5")
