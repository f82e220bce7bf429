"""Inputs a run reads from files, recorded by content when it starts, so that one run
directory never holds draws of two targets: the weights of every model it reads
(``--model`` and an expert's ``model=``, by :func:`pyro_mlm.models.fingerprint.fingerprint`)
and a ``--length-prior`` file's weights. A resume reads the records, never the files; a
file that now holds something else is refused in one line, a file that is gone is fine."""

from __future__ import annotations

import os

from pyro_mlm.run.spec import RunSpec


def models_read(spec: RunSpec) -> list[str]:
    """``--model`` and every expert's ``model=`` (a name or a directory)."""
    from pyro_mlm.experts.declared import parse_expert

    names = [spec.model]
    for text in spec.experts:
        model = parse_expert(text)[1].get("model")
        if model and model not in names:
            names.append(model)
    return names


def uses_prior_file(spec: RunSpec) -> bool:
    """Whether ``length_prior`` names a file (not ``uniform`` or ``penalty:VALUE``)."""
    return spec.length_prior != "uniform" and not spec.length_prior.startswith("penalty:")


def record_inputs(spec: RunSpec) -> RunSpec:
    """``spec`` with what its input files hold recorded (kept where already recorded): the
    models' fingerprints (``model_fingerprints``) and a ``--length-prior`` file's weights
    (``length_weights``)."""
    if not spec.model_fingerprints:
        from pyro_mlm.models.fingerprint import fingerprint

        prints = {name: fingerprint(name) for name in models_read(spec)}
        spec = spec.replace(model_fingerprints=prints)
    if spec.lengths and not spec.length_weights and uses_prior_file(spec):
        from pyro_mlm.region.lengths import read_weights

        weights = tuple(sorted(read_weights(spec.length_prior).items()))
        spec = spec.replace(length_weights=weights)
    return spec


def check_recorded_inputs(spec: RunSpec) -> None:
    """``ValueError`` when a file this run recorded by content now holds something else."""
    from pyro_mlm.models.fingerprint import fingerprint

    for name, recorded in spec.model_fingerprints.items():
        if os.path.isdir(name) and fingerprint(name) != recorded:
            raise ValueError(
                f"the model directory {name} holds other files than when the run "
                f"started ({recorded[:19]}... recorded in run.json): its draws would mix "
                "two models; restore the weights, or start a new run with another --out"
            )
    if not (spec.length_weights and os.path.isfile(spec.length_prior)):
        return
    from pyro_mlm.region.lengths import read_weights

    now = tuple(sorted(read_weights(spec.length_prior).items()))
    if now != spec.length_weights:
        before, after = dict(spec.length_weights), dict(now)
        changed = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
        raise ValueError(
            f"--length-prior {spec.length_prior} changed since the run started (the "
            f"weights of lengths {changed} differ from those recorded in run.json); the "
            "run samples the law it started with: restore the file, or start a new run "
            "with another --out"
        )
