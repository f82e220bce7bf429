"""Experts (pyro_mlm/experts.py): each one's energy, the registry and its text, the
proposal restriction, start checks, and a property test that no draw breaks a hard
constraint."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from conftest import packaged_installed, tiny_mlm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_mlm import MLMEnergy, Target
from pyro_mlm.experts import (
    EXPERTS,
    Allowed,
    Classifier,
    Composition,
    Context,
    Forbid,
    MaxMutations,
    MLMExpert,
    build_expert,
    check_start,
    parse_expert,
)
from pyro_mlm.models.load import load_vocabulary
from pyro_mlm.samplers import SAMPLERS, build_sampler

TEXT = "a b c d e f g h"
INF = math.inf


@pytest.fixture(scope="module")
def words():
    return tiny_mlm(num_words=8, init_range=0.3)


def test_registry_and_text() -> None:
    assert set(EXPERTS) == {
        "max-mutations",
        "forbid",
        "allowed",
        "composition",
        "mlm",
        "classifier",
    }
    assert parse_expert("max-mutations:3") == ("max-mutations", {"k": "3"})
    assert parse_expert("composition:property=charge;target=1.5;weight=2") == (
        "composition",
        {"property": "charge", "target": "1.5", "weight": "2"},
    )
    with pytest.raises(ValueError, match="unknown expert 'nope'; registered: allowed"):
        parse_expert("nope:k=1")
    with pytest.raises(ValueError, match="its keys: k"):
        parse_expert("max-mutations:depth=1")


def test_max_mutations_counts_free_positions_only(words) -> None:
    parent = words.encode(TEXT)
    free = torch.zeros_like(parent, dtype=torch.bool)
    free[2:5] = True
    expert = MaxMutations(parent, free, k=1)
    x = torch.stack([parent, parent.clone(), parent.clone(), parent.clone()])
    x[1, 2] = 6  # one free mutation
    x[2, 2:4] = 12  # two free mutations
    x[3, 7] = 5  # a fixed position differs: not counted
    assert expert(x).tolist() == [0.0, 0.0, INF, 0.0]
    assert pickle.loads(pickle.dumps(expert))(x).tolist() == [0.0, 0.0, INF, 0.0]


def test_forbid_counts_matches_that_touch_a_free_position(words) -> None:
    ids = words.encode(TEXT)
    free = torch.zeros_like(ids, dtype=torch.bool)
    free[5:7] = True  # words e, f
    assert Forbid(["b c"], words, free)(ids[None]).item() == 0.0  # in the fixed part
    assert Forbid(["b c"], words, None)(ids[None]).item() == INF  # scope=all
    assert Forbid(["d e"], words, free)(ids[None]).item() == INF  # touches 'e'
    assert Forbid(["d e"], words, free).matches(ids.tolist()) == ["'d e' at 7-9"]
    clone = pickle.loads(pickle.dumps(Forbid(["d e"], words, free)))
    assert clone(ids[None]).item() == INF


def test_liabilities_preset_on_residues() -> None:
    if not packaged_installed("antiberty"):
        pytest.skip("antiberty is not installed")
    vocab = load_vocabulary("antiberty")
    seqs = ["AANGSA", "AANPSA", "AADGAA", "ACAAAA", "ACACAA", "AAAAAA", "ANASAA"]
    ids = torch.stack([vocab.encode(s) for s in seqs])
    context = Context(vocab, ids[5], torch.ones_like(ids[5], dtype=torch.bool))
    expert = build_expert("forbid:preset=liabilities", context)
    # NG and N-G-S; N-P-S is not a glycosylation site; DG; one C unpaired; two C; none; N-A-S
    assert expert(ids).tolist() == [INF, 0.0, INF, INF, 0.0, 0.0, INF]


def test_composition_charge_and_hydrophobicity() -> None:
    if not packaged_installed("antiberty"):
        pytest.skip("antiberty is not installed")
    vocab = load_vocabulary("antiberty")
    ids = torch.stack([vocab.encode(s) for s in ["KKKK", "DDDD", "GGGG", "IIII"]])
    charge = Composition(vocab, "charge", target=0.0)
    values = charge.value(ids)
    assert values[0] > 3.5 and values[1] < -3.5 and abs(float(values[2])) < 0.3
    assert charge(ids)[2] < charge(ids)[0]
    hydro = Composition(vocab, "hydrophobicity", target=4.5, weight=2.0)
    assert hydro.value(ids).tolist()[3] == pytest.approx(4.5)
    assert hydro(ids)[3].item() == pytest.approx(0.0, abs=1e-6)
    assert hydro(ids)[2].item() == pytest.approx(2.0 * (4.5 + 0.4) ** 2, rel=1e-5)


def test_mlm_expert_is_the_second_models_energy(words) -> None:
    second = tiny_mlm(num_words=8, init_range=0.3, seed=3)
    ids = words.encode("a b c d")
    free = torch.zeros_like(ids, dtype=torch.bool)
    free[1:3] = True
    expert = MLMExpert(second, words, free, ids, weight=0.5)
    x = torch.stack([ids, words.encode("b b c d")])
    expected = 0.5 * MLMEnergy(second)(x, free)
    assert torch.allclose(expert(x), expected, atol=1e-5)
    assert torch.allclose(pickle.loads(pickle.dumps(expert))(x), expected, atol=1e-5)


def test_classifier_expert_is_minus_log_probability(words) -> None:
    def model(texts: list[str]) -> torch.Tensor:  # favours texts with many 'a'
        return torch.tensor([[0.0, float(t.count("a"))] for t in texts])

    from pyro_mlm.experts import _Text

    expert = Classifier(model, _Text(words), label=1, weight=2.0)
    x = torch.stack([words.encode("a a a"), words.encode("b b b")])
    expected = -2.0 * torch.log_softmax(torch.tensor([[0.0, 3.0], [0.0, 0.0]]), -1)[:, 1]
    assert torch.allclose(expert(x), expected)
    with pytest.raises(ValueError, match="must return"):
        Classifier(lambda t: torch.zeros(len(t)), _Text(words))(x)


def test_huggingface_classifier_from_a_directory(words, tmp_path) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words.tokenizer), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, num_labels=2,
    )  # fmt: skip
    BertForSequenceClassification(config).eval().save_pretrained(tmp_path)
    words.tokenizer.save_pretrained(tmp_path)
    ids = words.encode("a b c")
    context = Context(words, ids, torch.ones_like(ids, dtype=torch.bool))
    expert = build_expert(f"classifier:model={tmp_path};label=0;weight=1", context)
    value = expert(torch.stack([ids, words.encode("c c c")]))
    assert value.shape == (2,) and bool((value > 0).all()) and bool(torch.isfinite(value).all())


def test_a_start_that_breaks_a_constraint_is_refused(words) -> None:
    ids = words.encode(TEXT)
    free = torch.ones_like(ids, dtype=torch.bool)
    with pytest.raises(ValueError, match="start of chain 1.*violates the constraint forbid c d"):
        starts = torch.stack([words.encode("a a a"), words.encode("b c d")])
        check_start([Forbid(["c d"], words, free[:5])], starts, words)
    target = Target(MLMEnergy(words), [MaxMutations(ids, free, k=0)])
    x = ids.clone()
    x[3] = 5
    sampler = build_sampler(
        "mh", target, free.clone().fill_(False).index_fill(0, torch.tensor([3]), True)[None]
    )
    with pytest.raises(ValueError, match="violates the constraint max-mutations k=0"):
        sampler.init(x[None])


def test_masked_gibbs_refuses_experts_it_would_ignore(words) -> None:
    ids = words.encode("a b c")
    free = torch.ones_like(ids, dtype=torch.bool)[None]
    free[0, [0, -1]] = False
    target = Target(MLMEnergy(words), [MaxMutations(ids, free[0], k=1)])
    with pytest.raises(ValueError, match="masked Gibbs never evaluates the target"):
        build_sampler("gibbs", target, free).init(ids[None])


# ---------------------------------------------------------------- no draw breaks a constraint
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    k=st.integers(0, 3),
    motif=st.sampled_from(["a b", "c", "b d", "d d"]),
    allowed=st.lists(st.sampled_from("abcd"), min_size=1, max_size=3, unique=True),
    sampler=st.sampled_from(sorted(n for n, c in SAMPLERS.items() if c.exact)),
    seed=st.integers(0, 2**16),
)
def test_no_draw_breaks_a_hard_constraint(words, k, motif, allowed, sampler, seed) -> None:
    """Random constraint sets and random valid starts, every exact sampler: every draw of
    every chain satisfies every hard constraint (energy finite, and checked directly)."""
    generator = torch.Generator().manual_seed(seed)
    parent = words.encode("a b c d a b")
    free = torch.zeros_like(parent, dtype=torch.bool)
    free[1:7] = True
    experts = [
        MaxMutations(parent, free, k),
        Forbid([motif], words, free),
        Allowed({3: [words.tokenizer.convert_tokens_to_ids(w) for w in allowed]}),
    ]
    ids = words.proposable_ids
    starts = []
    for _ in range(2000):  # rejection-sample valid random starts
        x = parent.clone()
        x[free] = ids[torch.randint(len(ids), (6,), generator=generator)]
        if all(float(e(x[None])) == 0 for e in experts):
            starts.append(x)
        if len(starts) == 4:
            break
    if len(starts) < 4:
        starts += [parent] * (4 - len(starts))
        if any(float(e(parent[None])) != 0 for e in experts):
            with pytest.raises(ValueError, match="violates the constraint"):
                check_start(experts, torch.stack(starts), words)
            return
    options = {"replicas": 2} if sampler == "replica-exchange" else {}
    s = build_sampler(
        sampler, Target(MLMEnergy(words), experts), free[None].repeat(4, 1), **options
    )
    state = s.init(torch.stack(starts))
    for _ in range(3):
        state, _ = s.step(state, generator)
        tokens = state.tokens if hasattr(state, "tokens") else state.inner.tokens
        assert bool(torch.isfinite(s.energy(state)).all())
        for expert in experts:
            assert bool((expert(tokens) == 0).all())
