"""Property tests (hypothesis, bounded and derandomised): never a traceback, never a silent
wrong result, whatever text, bytes or JSON a user or a damaged disk hands us."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
from conftest import packaged_installed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_mlm.cli import UsageError, read_sequences
from pyro_mlm.design.sites import RANGES, parse_free
from pyro_mlm.models.load import load_vocabulary
from pyro_mlm.models.packaged import PACKAGED
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.run.store import CHECKPOINT_KEYS, DamagedRunError, iter_records, load_checkpoint

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ---------------------------------------------------------------- --free
@SETTINGS
@given(spec=st.text(alphabet="0123456789-, *.almsdkc3h", max_size=14))
def test_free_is_a_correct_mask_or_a_value_error(mlm, spec) -> None:
    tokens = mlm.encode("a b c d e f")  # [CLS] + 6 words + [SEP]
    try:
        mask = parse_free(spec, tokens, mlm)
    except ValueError as err:
        assert str(err)
        return
    assert mask.dtype == torch.bool and mask.shape == tokens.shape
    assert not bool(mask[0]) and not bool(mask[-1]) and bool(mask.any())
    chosen = {int(i) for i in mask.nonzero().flatten()}  # token indices; word k is index k
    text = spec.strip()
    if text == "all":
        assert chosen == set(range(1, 7))
    elif RANGES.match(text):
        expected: set[int] = set()
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            expected |= set(range(int(lo), int(hi or lo) + 1))
        assert chosen == expected
    else:  # a mask string of '*' and '.'
        assert chosen == {k + 1 for k, c in enumerate(text) if c == "*"}


# ---------------------------------------------------------------- encoding, every packaged model
@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_encoding_round_trips_or_refuses(name) -> None:
    if not packaged_installed(name):
        pytest.skip(f"{name} is not installed")
    vocab = load_vocabulary(name)
    letters = vocab.tokens_text(vocab.proposable_ids[:30]) if name == "rxnmapper" else ""
    valid = letters or "ACDEFGHIKLMNPQRSTVWY"
    mask = str(vocab.tokenizer.mask_token)
    pieces = st.sampled_from([*valid, mask]) | st.sampled_from([*"Zxz1 *\n<>[]", "\u00e9"])
    texts = st.text(alphabet=valid, max_size=60) | st.lists(pieces, max_size=20).map("".join)

    @SETTINGS
    @given(text=texts)
    def check(text: str) -> None:
        try:
            ids = vocab.encode(text)
        except ValueError as err:
            assert any(w in str(err) for w in ("outside the vocabulary", "empty", "SMILES"))
            return
        assert vocab.decode(ids) == text  # nothing silently dropped, replaced or [UNK]
        ends = vocab.special_mask(ids) & (ids != vocab.mask_token_id)
        assert ends.tolist() == [True] + [False] * (len(ids) - 2) + [True]

    check()


# ---------------------------------------------------------------- sequences files
@SETTINGS
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_sequences_file_reader_reads_text_or_names_the_file(tmp_path, data) -> None:
    path = tmp_path / "seqs.txt"
    path.write_bytes(data)
    try:
        texts = read_sequences(str(path))
    except UsageError as err:
        assert str(path) in str(err)
        return
    assert texts and all(isinstance(t, str) and t and t == t.strip() for t in texts)
    assert "\x00" not in "".join(texts)


# ---------------------------------------------------------------- the run directory
GOOD = {
    "chain": 0,
    "draw": 0,
    "sequence": "a b",
    "energy": 1.5,
    "hamming": 0,
    "acceptance_rate": 1.0,
    "novel_rate": 0.0,
    "accept_prob": 1.0,
    "tokens": [2, 5, 6, 3],
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@SETTINGS
@given(
    changes=st.dictionaries(st.sampled_from(sorted(GOOD)), json_values, max_size=3),
    drop=st.sets(st.sampled_from(sorted(GOOD)), max_size=2),
)
def test_draw_records_are_valid_or_refused_with_the_line(tmp_path, changes, drop) -> None:
    record = {k: v for k, v in {**GOOD, **changes}.items() if k not in drop}
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(record) + "\n")
    try:
        records = list(iter_records(str(path), chains=2))
    except DamagedRunError as err:
        assert f"{path} line 2" in str(err)
        return
    got = records[1]  # accepted: then it really is a draw record of this run
    assert 0 <= got["chain"] < 2 and got["draw"] >= 0 and len(got["tokens"]) == 4
    assert isinstance(got["energy"], (int, float)) and got["energy"] == got["energy"]
    assert isinstance(got["sequence"], str) and all(isinstance(t, int) for t in got["tokens"])


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_in_samples_jsonl_are_refused_or_skipped(tmp_path, data) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + data)
    try:
        records = list(iter_records(str(path), chains=1))
    except DamagedRunError as err:
        assert re.search(rf"{re.escape(str(path))} line \d+", str(err))
        return
    assert records[0] == GOOD and all(set(r) >= set(GOOD) for r in records)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_random_bytes_as_a_checkpoint_are_damaged(tmp_path, data) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(data)
    with pytest.raises(DamagedRunError, match=re.escape(str(path))):
        load_checkpoint(str(path), CHECKPOINT_KEYS)


@SETTINGS
@given(
    data=st.binary(max_size=200)
    | st.builds(json.dumps, json_values).map(str.encode)
    | st.builds(
        lambda k, v: json.dumps({"model": "m", "sequences": ["a"], k: v}),
        st.sampled_from(["free", "energy", "kernel", "warmup", "samples", "seed", "scan", "x"]),
        json_values,
    ).map(str.encode)
)
def test_run_json_is_a_valid_spec_or_names_the_file(tmp_path, data) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(data)
    try:
        spec = RunSpec.read(str(path))
    except ValueError as err:
        assert str(path) in str(err) and "damaged" in str(err)
        return
    assert spec.validate() is spec and os.path.exists(path)
