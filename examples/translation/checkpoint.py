"""Resumable training state: what ``train.py`` needs, beyond the weights, to continue.

A training checkpoint is a model directory (``tlm.save``) plus two files:

- ``training_state.json``: the step reached, the hyper-parameters, the sha256 of the
  weights it belongs to, and the history of the commands that trained it;
- ``training_state.safetensors``: AdamW's moments (``exp_avg.i``, ``exp_avg_sq.i`` and
  ``step.i`` for parameter ``i``), the data order still to be drawn this epoch
  (``order``), and the two random states (``generator``: batch order and masking;
  ``torch_rng``: dropout on the CPU; ``cuda_rng`` too when trained on a GPU).

The learning rate is a function of the step alone (``train.rate``), so the step is the
schedule's whole state. With ``dtype=torch.float32`` (the default), resuming is
bit-identical to never having stopped (at the same thread count).
``dtype=torch.bfloat16`` halves the file; the moments are then rounded to 8
significant bits, and resuming continues from nearly, not exactly, the same state.

A checkpoint is written to ``DIR.partial`` and then swapped in (``DIR`` -> ``DIR.old``,
``DIR.partial`` -> ``DIR``), so an interruption while saving leaves the previous
checkpoint readable; :func:`locate` finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
WEIGHTS = ("model.safetensors", "length_predictor.safetensors")


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def locate(directory: str) -> str:
    """The readable checkpoint directory: ``directory``, or ``directory.old`` when an
    interrupted save left only that. Raises ``FileNotFoundError`` with the reason."""
    for candidate in (directory, directory + ".old"):
        if os.path.exists(os.path.join(candidate, STATE_JSON)):
            return candidate
    if os.path.exists(os.path.join(directory, "model.safetensors")):
        raise FileNotFoundError(
            f"{directory} holds weights but no {STATE_JSON}: it was trained before "
            "train.py saved its optimizer state. Use --init DIR to continue from its "
            "weights with a fresh optimizer and schedule."
        )
    raise FileNotFoundError(f"no training checkpoint in {directory}")


def read_meta(directory: str) -> dict[str, Any]:
    """``training_state.json`` of a checkpoint, checked against the weights beside it."""
    with open(os.path.join(directory, STATE_JSON), encoding="utf-8") as handle:
        meta: dict[str, Any] = json.load(handle)
    for name, digest in meta["weights_sha256"].items():
        if file_sha256(os.path.join(directory, name)) != digest:
            raise ValueError(
                f"{directory}/{name} does not match {STATE_JSON} (sha256 differs): the "
                "weights were changed after the checkpoint was written"
            )
    return meta


def save(
    directory: str,
    write_model: Callable[[str], None],
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    order: list[int],
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write the weights (``write_model(path)``) and the training state, then swap them in.

    ``meta`` must hold ``step`` and whatever the caller needs to rebuild the run; the
    sha256 of the weights is added here.
    """
    partial, old = directory + ".partial", directory + ".old"
    shutil.rmtree(partial, ignore_errors=True)
    write_model(partial)
    tensors: dict[str, torch.Tensor] = {
        "order": torch.tensor(order, dtype=torch.int64),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on the GPU
        tensors["cuda_rng"] = torch.cuda.get_rng_state()
    state = optimizer.state_dict()["state"]
    for index, entry in state.items():
        tensors[f"exp_avg.{index}"] = entry["exp_avg"].to("cpu", dtype).contiguous()
        tensors[f"exp_avg_sq.{index}"] = entry["exp_avg_sq"].to("cpu", dtype).contiguous()
        step = torch.as_tensor(entry["step"], dtype=torch.float32)
        tensors[f"step.{index}"] = step.cpu().reshape(1)
    save_file(tensors, os.path.join(partial, STATE_TENSORS))
    meta = {
        **meta,
        "state_dtype": str(dtype).removeprefix("torch."),
        "weights_sha256": {n: file_sha256(os.path.join(partial, n)) for n in WEIGHTS},
    }
    with open(os.path.join(partial, STATE_JSON), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(directory):
        os.replace(directory, old)
    os.replace(partial, directory)
    shutil.rmtree(old, ignore_errors=True)


def load(directory: str, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> list[int]:
    """Restore AdamW's moments and both random states; return the data order left.

    ``optimizer`` must have been built over the same parameters in the same order.
    """
    tensors = load_file(os.path.join(directory, STATE_TENSORS))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for index, param in enumerate(params):
        if f"exp_avg.{index}" not in tensors:
            continue  # a parameter that never received a gradient has no state
        exp_avg = tensors[f"exp_avg.{index}"]
        if exp_avg.shape != param.shape:
            raise ValueError(
                f"{directory}: optimizer state {index} has shape {tuple(exp_avg.shape)}, "
                f"the model's parameter {tuple(param.shape)}"
            )
        state[index] = {
            "step": tensors[f"step.{index}"].reshape(()),
            "exp_avg": exp_avg.to(param.dtype),
            "exp_avg_sq": tensors[f"exp_avg_sq.{index}"].to(param.dtype),
        }
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda_rng"])
    return [int(i) for i in tensors["order"].tolist()]
