"""Every declared expert through the same checks: one entry in EXPERT_CASES each (the
exactness of the product they make is tests/samplers/test_exactness.py's
``test_with_every_expert_the_samplers_sample_the_exact_product``)."""

from __future__ import annotations

import json

import pytest
from expert_cases import EXPERT_CASES, FREE, START, ExpertCase, protein_mlm, saved_models

from pyro_mlm.design.sites import parse_free
from pyro_mlm.experts import EXPERTS, Context, build_expert, parse_expert
from pyro_mlm.experts.declared import DECLARED
from pyro_mlm.run.loop import sample_to_directory
from pyro_mlm.run.spec import RunSpec
from pyro_mlm.target import restricts


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return saved_models(str(tmp_path_factory.mktemp("models")))


def test_every_declared_expert_has_a_case_and_its_class_reads_its_declaration() -> None:
    assert {case.expert for case in EXPERT_CASES} == set(DECLARED) == set(EXPERTS)
    for name, declared in DECLARED.items():
        cls = EXPERTS[name]
        assert cls.name == name and f"{cls.__module__}:{cls.__name__}".endswith(declared.cls)
        assert (cls.hard, cls.restricts, cls.KEYS, cls.MAIN) == (
            declared.hard, declared.restricts, declared.keys, declared.main,
        )  # fmt: skip


@pytest.mark.parametrize("case", EXPERT_CASES, ids=repr)
def test_an_expert_answers_the_samplers_question_from_its_declaration(
    paths: dict[str, str], case: ExpertCase
) -> None:
    mlm = protein_mlm()
    start = mlm.encode(START)
    expert = build_expert(case.text(paths), Context(mlm, start, parse_free(FREE, start, mlm)))
    assert restricts(expert) is DECLARED[case.expert].restricts
    assert float(expert(start[None])[0]) < float("inf")  # the start satisfies every case


@pytest.mark.parametrize("case", EXPERT_CASES, ids=repr)
def test_bad_expert_settings_are_one_line_errors(paths: dict[str, str], case: ExpertCase) -> None:
    mlm = protein_mlm()
    start = mlm.encode(START)
    context = Context(mlm, start, parse_free(FREE, start, mlm))
    with pytest.raises(ValueError, match=f"expert '{case.expert}' takes no key 'nokey'"):
        parse_expert(f"{case.expert}:nokey=1")
    for options, message in case.bad:
        with pytest.raises(ValueError, match=message) as caught:
            build_expert(f"{case.expert}:{options}", context)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", EXPERT_CASES, ids=repr)
def test_an_interrupted_run_with_the_expert_resumes_to_the_same_draws(
    tmp_path, paths: dict[str, str], case: ExpertCase
) -> None:
    mlm = protein_mlm()  # in memory: a saved directory loads without the residue split
    spec = RunSpec(
        model=paths["run"], sequences=(START,) * 2, free=FREE, warmup=2, samples=4, seed=3,
        experts=(case.text(paths),),
    )  # fmt: skip
    whole = sample_to_directory(spec, mlm, str(tmp_path / "whole"), progress=False)
    assert whole.completed

    def stop(sweep: int) -> None:
        if sweep == 4:
            raise KeyboardInterrupt  # after the sweep's draws, before its checkpoint

    cut = str(tmp_path / "cut")
    assert not sample_to_directory(spec, mlm, cut, progress=False, on_sweep=stop).completed
    assert sample_to_directory(spec, mlm, cut, resume=True, progress=False).completed
    read = [(tmp_path / d / "samples.jsonl").read_bytes() for d in ("whole", "cut")]
    assert read[0] == read[1]
    energies = [json.loads(line)["energy"] for line in read[0].decode().splitlines()]
    assert len(energies) == 2 * 4 and all(e < float("inf") for e in energies)
