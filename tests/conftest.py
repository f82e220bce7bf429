"""Shared fixtures: tiny masked LMs built from a config (never downloaded), seeded tests."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

import matplotlib
import pyro
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from pyro_mlm import MaskedLM

# the case lists and the enumeration helpers live beside the tests they serve
# (tests/samplers/sampler_cases.py and exact.py, tests/experts/expert_cases.py); tests in
# other folders import them by name, so their folders are on the path whatever runs first
for _folder in ("samplers", "experts"):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), _folder))

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]

os.environ.setdefault("TQDM_DISABLE", "1")
# the command line's default thread count follows the load average, and floats (so draws)
# depend on threads in their last bits: pin it, so that runs compared bit for bit agree
# however loaded the machine is (tests/cli/test_cli.py checks the load rule itself)
os.environ.setdefault("OMP_NUM_THREADS", "2")


def tiny_mlm(
    num_words: int = 8,
    seed: int = 0,
    init_range: float = 0.02,
    hidden: int = 32,
    max_positions: int = 32,
    words: Sequence[str] | None = None,
    **kwargs: object,
) -> MaskedLM:
    """A random 2-layer BERT MLM over ``[PAD] [UNK] [CLS] [SEP] [MASK]`` + ``num_words`` words
    (or ``words``: e.g. residues with ``split=list``, a tiny protein model).

    ``init_range`` sets the weight scale: larger values give peakier, more mutually
    inconsistent conditionals (the regime where masked Gibbs is visibly wrong).
    """
    names = list(WORDS[:num_words] if words is None else words)
    vocab = {tok: i for i, tok in enumerate(SPECIAL + names)}
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
        initializer_range=init_range,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    model = BertForMaskedLM(config)
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=False)
    return MaskedLM(model, tokenizer, **kwargs)


def save_tiny(path: object, **kwargs: object) -> str:
    """Save a :func:`tiny_mlm` (model and tokenizer) like any Hugging Face model directory."""
    mlm = tiny_mlm(**kwargs)  # type: ignore[arg-type]
    mlm.model.save_pretrained(path)
    mlm.tokenizer.save_pretrained(path)
    return str(path)


def run_fresh_python(script: str) -> tuple[str, str]:
    """Run ``script`` in a new interpreter (nothing imported yet); it must exit 0.

    Returns its stdout and stderr; for checks such as "torch is never imported".
    """
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def run_mcmc(kernel: object, tokens: torch.Tensor, samples: int, warmup: int, **kwargs: object):
    """Run ``pyro.infer.MCMC`` from ``tokens`` with the progress bar off; return the MCMC."""
    from pyro.infer import MCMC

    mcmc = MCMC(
        kernel,
        num_samples=samples,
        warmup_steps=warmup,
        initial_params={"tokens": tokens},
        disable_progbar=True,
        **kwargs,
    )
    mcmc.run()
    return mcmc


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the ``slow`` tests unless the ``-m`` expression names them (so that
    ``-m "not integration"`` still leaves them out: one ``-m`` replaces another)."""
    if "slow" in (config.option.markexpr or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def _signals_left_as_found():
    """No test may leave a SIGINT or SIGTERM handler behind (a run's stop guard, Ray's
    handler): the suite itself must stop on Ctrl-C and ``kill``."""
    import signal

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    after = {s: signal.getsignal(s) for s in before}
    for sig, handler in before.items():
        signal.signal(sig, handler)
    assert after == before, f"a test left signal handlers behind: {after}"


@pytest.fixture(autouse=True)
def _seed() -> None:
    pyro.set_rng_seed(20260 + 1123)
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def mlm() -> MaskedLM:
    return tiny_mlm()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny BERT MLM (peaky weights, init scale 0.3) saved as a model directory."""
    return save_tiny(tmp_path_factory.mktemp("tiny-bert"), init_range=0.3)


def packaged_installed(name: str) -> bool:
    """Whether a packaged model's files are installed (its vocabulary reads)."""
    from pyro_mlm.models.packaged import PACKAGED

    try:
        PACKAGED[name].vocabulary()
    except ValueError:
        return False
    return True


# trastuzumab heavy chain: the flagship task of the tests, the README and bench/
TRASTUZUMAB_VH = (
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQ"
    "MNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)


@contextlib.contextmanager
def arviz_constant_warnings_allowed() -> Iterator[None]:
    """ArviZ warns (it does not fail) on a constant variable, and calls a matplotlib API
    that matplotlib 3.11 deprecates: those warnings are ArviZ's, not ours."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Your data appears to have a single value")
        warnings.filterwarnings("ignore", category=matplotlib.MatplotlibDeprecationWarning)
        yield
