r"""What every sweep sampler shares: settings, the sweep loop, the per-sweep info.

A sampler is an immutable object built from the target and the free positions. Its
:meth:`SweepSampler.init` turns tokens into a state, and :meth:`SweepSampler.step`
runs one sweep, ``(state, generator) -> (state, info)``, without touching anything
else: states and infos are ``NamedTuple`` s of tensors (BlackJAX ``RWState`` /
``RWInfo``), so a run is checkpointed by saving the state's fields and the
generator's state, and any new info field is recorded and saved by the shells
without editing them.

A subclass sets ``name``, declares its extra ``OPTIONS`` and implements
:meth:`SweepSampler.start` (the state of some tokens) and
:meth:`SweepSampler.propose` (one proposal in every chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from pyro_mlm.samplers.info import Record
from pyro_mlm.samplers.options import Option
from pyro_mlm.samplers.scan import SCANS, Scan, Sites, next_positions, sites_of
from pyro_mlm.samplers.transitions import MHInfo
from pyro_mlm.target import Target
from pyro_mlm.validation import check_chains, check_proposals, check_temperature


class ChainState(Protocol):
    """What every sampler's state is: a ``NamedTuple`` of tensors with at least these
    fields. The shells (the :class:`~pyro_mlm.samplers.chain.Chain` driver, checkpoints,
    records) need nothing more; each sampler's own state adds its caches."""

    @property
    def tokens(self) -> torch.Tensor:
        """``[C, L]`` the chains' current sequences."""

    @property
    def cursor(self) -> torch.Tensor:
        """``[]`` the position-scan cursor."""

    @property
    def rows(self) -> torch.Tensor:
        """``[C]`` masked rows evaluated so far by each chain."""

    def _asdict(self) -> dict[str, Any]: ...

    def _replace(self, **changes: Any) -> Any: ...


@dataclass(frozen=True, eq=False)
class SweepInfo(Record):
    r"""Per-chain statistics ``[C]`` of one sweep.

    Attributes
    ----------
    accept_prob
        Mean :math:`\min(1, \alpha)` over the sweep's proposals.
    acceptance_rate
        Fraction of proposals accepted (a self-proposal counts).
    is_novel
        Fraction accepted and different from the current sequence.
    rows
        Masked rows the chain evaluated in this sweep (its cost).
    """

    accept_prob: torch.Tensor
    acceptance_rate: torch.Tensor
    is_novel: torch.Tensor
    rows: torch.Tensor


class SweepSampler:
    """Settings of a sampler over ``C`` chains with free mask ``free [C, L]``.

    Parameters
    ----------
    target
        The distribution to sample (MLM energy, experts, temperature).
    free
        ``[C, L]`` bool mask of the positions each chain may change.
    scan
        ``"random"`` or ``"systematic"`` order of the proposal positions.
    proposal_temperature
        :math:`\\tau` of the masked-conditional proposals.
    proposals_per_sweep
        Proposals per :meth:`step` (default: the largest free count, one sweep).
    """

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = True
    State: ClassVar[Any]  # the NamedTuple class of this sampler's states
    NESTED: ClassVar[dict[str, Any]] = {}  # classes of nested states, by field
    OPTIONS: ClassVar[dict[str, Option]] = {}
    # the statistics the progress line shows (names as in summary.csv; a vector statistic
    # such as swap_rate shows every entry): pyro_mlm.samplers.statistics
    PROGRESS: ClassVar[tuple[str, ...]] = ("acceptance_rate", "novel_rate")

    def __init__(
        self,
        target: Target,
        free: torch.Tensor,
        *,
        scan: Scan = "random",
        proposal_temperature: float = 1.0,
        proposals_per_sweep: int | None = None,
    ) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"expected a Target, got {type(target).__name__}")
        if scan not in SCANS:
            raise ValueError(f"scan must be 'random' or 'systematic', got {scan!r}")
        check_proposals(proposals_per_sweep)
        if not isinstance(free, torch.Tensor) or free.dtype != torch.bool or free.dim() != 2:
            got = tuple(free.shape) if isinstance(free, torch.Tensor) else type(free).__name__
            kind = f", dtype {free.dtype}" if isinstance(free, torch.Tensor) else ""
            raise ValueError(
                f"free must be a [C, L] bool mask (one row per chain), got {got}{kind}; e.g. "
                "parse_free('98-110', ids, mlm).expand(C, -1)"
            )
        if not bool(free.any(-1).all()):
            raise ValueError("free must have a free position in every row (chain)")
        self.target = target
        self.sites: Sites = sites_of(free)
        self.scan: Scan = scan
        self.proposal_temperature = check_temperature(proposal_temperature, "proposal_temperature")
        self.proposals = proposals_per_sweep or int(self.sites.counts.max())
        self.proposable = target.mlm.proposable_ids.to(free.device)

    # ------------------------------------------------------------ the interface
    def init(self, tokens: torch.Tensor, beta: torch.Tensor | None = None) -> Any:
        """The state of ``tokens [C, L]``; ``beta [C]`` defaults to ``1 / T`` of the target."""
        tokens = check_chains(tokens, self.sites.mask, self.target.mlm)
        if beta is None:
            beta = torch.full((tokens.shape[0],), 1.0 / self.target.temperature)
        self.target.check_start(tokens)
        zero = torch.zeros((), dtype=torch.long)
        rows = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
        return self.start(tokens, beta.to(tokens.device), zero, rows)

    def step(self, state: Any, generator: torch.Generator | None = None) -> tuple[Any, SweepInfo]:
        """One sweep: ``proposals`` proposals in every chain; returns the new state and info."""
        sums: torch.Tensor | float = 0.0
        rows_before = state.rows
        with torch.no_grad():
            for _ in range(self.proposals):
                positions, cursor = next_positions(self.sites, state.cursor, self.scan, generator)
                state, info = self.propose(state._replace(cursor=cursor), positions, generator)
                sums = sums + self.tally(info)
        assert isinstance(sums, torch.Tensor)
        return state, self.sweep_info(state, sums, state.rows - rows_before)

    def tally(self, info: Any) -> torch.Tensor:
        """``[n, C]``: what one proposal adds to the sweep's sums (a sampler with more
        per-sweep statistics extends it and :meth:`sweep_info`)."""
        return torch.stack([info.accept_prob, info.is_accepted.float(), info.is_novel.float()])

    def sweep_info(self, state: Any, sums: torch.Tensor, rows: torch.Tensor) -> Any:
        """The sweep's info from the summed :meth:`tally` and the rows it cost."""
        accept_prob, acceptance_rate, is_novel = sums[:3] / self.proposals
        return SweepInfo(accept_prob, acceptance_rate, is_novel, rows)

    def end_warmup(self, state: Any) -> Any:
        """The state to continue from once warm-up ends (a sampler that adapts freezes here)."""
        return state

    def energy(self, state: Any) -> torch.Tensor:
        """Total energy ``[C]`` of the state's sequences (cached where the sampler keeps it)."""
        return state.energy

    def distance(self, tokens: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``[C]`` how far ``tokens [C, L]`` are from ``reference [1, L]``: the Hamming
        distance (the draw records' ``hamming``)."""
        return (tokens != reference).sum(-1)

    def draw_stats(self, tokens: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        """Float64 ``[C]`` sites of a draw beside its tokens and energy (the Pyro shell's):
        ``hamming``, the :meth:`distance` to ``reference``."""
        return {"hamming": self.distance(tokens, reference).double()}

    def options(self) -> dict[str, Any]:
        """This sampler's own settings, derived from ``OPTIONS``: the attribute of each
        name, as a JSON value (tuples as lists), for those that :meth:`applies`."""
        out = {}
        for name in self.OPTIONS:
            if self.applies(name):
                value = getattr(self, name)
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def applies(self, option: str) -> bool:
        """Whether one of ``OPTIONS`` is in force with this sampler's other settings."""
        return True

    # ------------------------------------------------------------ for subclasses
    def start(
        self, tokens: torch.Tensor, beta: torch.Tensor, cursor: torch.Tensor, rows: torch.Tensor
    ) -> Any:
        raise NotImplementedError

    def propose(
        self, state: Any, positions: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[Any, MHInfo]:
        raise NotImplementedError

    def evaluate(self, tokens: torch.Tensor, chains: torch.Tensor) -> Any:
        """The target's evaluation of ``tokens`` (rows of chains ``chains``)."""
        return self.target.evaluate(tokens, self.sites.mask[chains], chains=chains)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(chains={self.sites.mask.shape[0]}, scan={self.scan!r}, "
            f"proposal_temperature={self.proposal_temperature}, proposals={self.proposals})"
        )


def state_dict(state: Any) -> dict[str, Any]:
    """The fields of a state as CPU tensors (nested states as dicts), for a checkpoint."""
    return {
        k: state_dict(v) if hasattr(v, "_asdict") else v.cpu()
        for k, v in state._asdict().items()
        if v is not None
    }


def load_state(
    cls: Any, saved: dict[str, Any], device: torch.device, nested: dict[str, Any] | None = None
) -> Any:
    """A ``cls`` state from :func:`state_dict`, on ``device``.

    A field saved as a dict is a nested state of class ``nested[field]`` (a sampler's
    ``NESTED``, e.g. the inner sampler's state of replica exchange).
    """
    missing = [f for f in cls._fields if f not in saved and f not in cls._field_defaults]
    if missing:
        raise KeyError(f"saved state lacks {missing}")
    nested = nested or {}
    return cls(
        **{
            k: load_state(nested[k], v, device) if isinstance(v, dict) else v.to(device)
            for k, v in saved.items()
            if k in cls._fields
        }
    )
