"""MaskedLM: wrapping, tokens, the gathered LM head, loading, and the packaged AntiBERTy."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import tiny_mlm
from transformers import BertConfig, BertForSequenceClassification, BertModel

from pyro_mlm import MaskedLM, MLMEnergy

HEAVY_CHAINS = [
    # trastuzumab VH
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS",
    # adalimumab VH
    "EVQLVESGGGLVQPGRSLRLSCAASGFTFDDYAMHWVRQAPGKGLEWVSAITWNSGHIDYADSVEGRFTISRDNAKNSLYLQ"
    "MNSLRAEDTAVYYCAKVSYLSTASSLDYWGQGTLVTVSS",
    # human IGHV3-23 germline
    "EVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVSAISGSGGSTYYADSVKGRFTISRDNSKNTLYLQ"
    "MNSLRAEDTAVYYCAK",
]


def test_wrapping_puts_the_model_in_eval_mode() -> None:
    mlm = tiny_mlm()
    assert not mlm.model.training
    ids = mlm.encode("a b c")
    assert MLMEnergy(mlm)(ids).item() == MLMEnergy(mlm)(ids).item()  # no dropout noise


def test_tokens_and_special_ids(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b c")
    assert ids.dtype == torch.long and ids.tolist() == [2, 5, 6, 7, 3]
    assert mlm.decode(ids) == "a b c"
    assert sorted(mlm.special_ids.tolist()) == [0, 1, 2, 3, 4]
    assert mlm.proposable_ids.tolist() == list(range(5, 13))
    assert mlm.special_mask(ids).tolist() == [True, False, False, False, True]
    assert mlm.max_length == 32 and mlm.head_mode == "gather"


def test_proposable_allow_list() -> None:
    mlm = tiny_mlm(proposable=["a", "c"])
    assert mlm.proposable_ids.tolist() == [5, 7]
    assert tiny_mlm(proposable=[6, 5]).proposable_ids.tolist() == [5, 6]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tiny_mlm(proposable=["zz"])
    with pytest.raises(ValueError, match="special or outside the vocabulary"):
        tiny_mlm(proposable=[4])
    with pytest.raises(TypeError, match="ids or strings"):
        tiny_mlm(proposable=[1.5])


def test_masked_logits_gathers_one_position_per_row(mlm: MaskedLM) -> None:
    ids = mlm.encode("a b c d").repeat(2, 1)
    pos = torch.tensor([1, 3])
    ids[torch.arange(2), pos] = mlm.mask_token_id
    out = mlm.masked_logits(ids, torch.ones_like(ids), pos)
    with torch.no_grad():
        full = mlm.model(input_ids=ids).logits
    torch.testing.assert_close(out, full[torch.arange(2), pos], atol=1e-5, rtol=0)
    # the hook is inert outside masked_logits: the user's model is unchanged
    with torch.no_grad():
        assert mlm.model(input_ids=ids).logits.shape == (2, 6, mlm.vocab_size)


@pytest.mark.parametrize("head_mode", ["gather", "full"])
def test_logits_at_scores_several_masked_positions_of_a_row(mlm: MaskedLM, head_mode) -> None:
    """The multi-mask conditional: rows with several masks, scores at several positions,
    equal to the plain forward's at those positions (both head modes)."""
    ids = mlm.encode("a b c d").repeat(2, 1)
    ids[0, [1, 2]] = mlm.mask_token_id  # row 0: two masks; row 1: three
    ids[1, [2, 3, 4]] = mlm.mask_token_id
    positions = torch.tensor([[1, 2, 2], [2, 3, 4]])  # row 0 repeats one (padding)
    mlm.head_mode = head_mode
    try:
        out = mlm.logits_at(ids, torch.ones_like(ids), positions)
    finally:
        mlm.head_mode = "gather"
    with torch.no_grad():
        full = mlm.model(input_ids=ids).logits
    expected = full.gather(1, positions.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
    assert out.shape == (2, 3, mlm.vocab_size)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_model_without_mlm_head_is_refused(mlm: MaskedLM) -> None:
    config = BertConfig(
        vocab_size=13,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    for model in (BertModel(config), BertForSequenceClassification(config)):
        with pytest.raises(TypeError, match="no masked-LM head.*AutoModelForMaskedLM"):
            MaskedLM(model, mlm.tokenizer)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        MaskedLM("bert-base-cased", mlm.tokenizer)  # type: ignore[arg-type]


def test_char_level_encoding_rejects_unknown_characters() -> None:
    mlm = tiny_mlm(char_level=True)
    assert mlm.encode("abc").tolist() == [2, 5, 6, 7, 3]
    assert mlm.decode(mlm.encode("abc")) == "abc"
    with pytest.raises(ValueError, match=r"characters outside the vocabulary.*\['X', 'z'\]"):
        mlm.encode("abzX")


def test_from_pretrained_local_directory_round_trip(tmp_path, mlm: MaskedLM) -> None:
    mlm.model.save_pretrained(tmp_path)
    mlm.tokenizer.save_pretrained(tmp_path)
    loaded = MaskedLM.from_pretrained(str(tmp_path), device="cpu", dtype=torch.float32)
    ids = mlm.encode("a b c")
    assert loaded.encode("a b c").tolist() == ids.tolist()
    assert MLMEnergy(loaded)(ids).item() == pytest.approx(MLMEnergy(mlm)(ids).item(), abs=1e-5)


def test_from_pretrained_missing_model_says_what_to_do(tmp_path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="no model directory at .*packaged models: antiberty"):
        MaskedLM.from_pretrained(str(tmp_path / "nope"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ValueError, match="unknown model 'antibery'.*cannot be reached.*Offline, use"
    ):
        MaskedLM.from_pretrained("antibery")


def test_encode_keeps_the_mask_token_and_lists_content_positions() -> None:
    mlm = tiny_mlm(char_level=True)
    ids = mlm.encode("a[MASK]c")
    assert ids.tolist() == [2, 5, 4, 7, 3]
    assert mlm.decode(ids) == "a[MASK]c"
    assert mlm.content_positions(ids).tolist() == [1, 2, 3]


antiberty = pytest.mark.skipif(
    importlib.util.find_spec("antiberty") is None, reason="needs pip install antiberty==0.1.3"
)


@antiberty
def test_packaged_antiberty_predicts_masked_residues() -> None:
    """Guards against silent breakage: a tokenizer that maps residues to [UNK] fails here.

    Measured: 0.84 and 0.86 on the two therapeutic (humanised, engineered CDR) chains,
    0.99 on the germline; 0.88 overall. A broken tokenizer or head scores about 1/20.
    """
    mlm = MaskedLM.from_pretrained("antiberty")
    assert mlm.vocab_size == 25 and len(mlm.proposable_ids) == 20
    hits = total = 0
    for seq in HEAVY_CHAINS:
        ids = mlm.encode(seq)
        assert ids[0] == 2 and ids[-1] == 3 and not bool((ids == 1).any())  # no [UNK]
        assert mlm.decode(ids) == seq
        result = MLMEnergy(mlm).evaluate(ids[None], (~mlm.special_mask(ids))[None])
        best = mlm.proposable_ids[result.logits[0, 1:-1].argmax(-1)]
        hits += int((best == ids[1:-1]).sum())
        total += len(seq)
    accuracy = hits / total
    print(f"AntiBERTy masked-residue accuracy: {accuracy:.3f}")
    assert accuracy > 0.8
    with pytest.raises(ValueError, match="outside the vocabulary"):
        mlm.encode("EVQLVXB")
