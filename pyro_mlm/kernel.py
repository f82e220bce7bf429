"""Pyro ``MCMCKernel`` shells around the pure MH and masked-Gibbs steps.

``initial_params={"tokens": LongTensor[L]}`` runs one chain; ``LongTensor[C, L]``
runs ``C`` vectorised chains through the same forward passes. One ``sample()`` call
is one sweep: as many proposals as free positions (``proposals_per_sample``
overrides it). Per-draw energies and acceptance statistics are kept for ArviZ and
returned by :meth:`diagnostics`, which Pyro hands back from every chain, parallel
processes included.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal, NamedTuple

import torch
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from pyro_mlm._pyro_parallel import calling_pyro_worker, pyro_worker_index
from pyro_mlm.energy import Evaluation, MLMEnergy
from pyro_mlm.mh import MHInfo, MHState, gibbs_step, mh_step
from pyro_mlm.potential import ExtraPotential, mlm_model
from pyro_mlm.proposals import Proposal, masked_conditional_proposal
from pyro_mlm.target import Target
from pyro_mlm.validation import check_temperature, check_tokens, resolve_free

Scan = Literal["random", "systematic"]


class _SweepKernel(MCMCKernel):
    """Shared shell: initial tokens, position scan, sweeps, records, Pyro plumbing."""

    def __init__(
        self,
        energy: MLMEnergy,
        free: object = None,
        scan: Scan = "random",
        proposal_temperature: float = 1.0,
        proposals_per_sample: int | None = None,
    ) -> None:
        if not isinstance(energy, MLMEnergy):
            raise TypeError(
                f"expected an MLMEnergy, got {type(energy).__name__}; build one with "
                "MLMEnergy(MaskedLM(model, tokenizer))"
            )
        if scan not in ("random", "systematic"):
            raise ValueError(f"scan must be 'random' or 'systematic', got {scan!r}")
        if proposals_per_sample is not None and (
            not isinstance(proposals_per_sample, int) or proposals_per_sample < 1
        ):
            raise ValueError(
                f"proposals_per_sample must be a positive int or None (one sweep), got "
                f"{proposals_per_sample!r}"
            )
        self.energy = energy
        self.free = free
        self.scan: Scan = scan
        self.proposal_temperature = check_temperature(proposal_temperature, "proposal_temperature")
        self.proposals_per_sample = proposals_per_sample
        self.transforms: dict[str, Any] = {}
        self.model: Any = None
        self._initial: torch.Tensor | None = None
        self._per_worker: dict[int, torch.Tensor] = {}
        self._vectorised = False
        self._state: Any = None
        self.last_sweep: SweepInfo | None = None
        self._records = _empty_records()
        self._reset_counters()

    # ------------------------------------------------------------ Pyro contract
    @property
    def initial_params(self) -> dict[str, torch.Tensor]:
        if self._initial is None:
            raise ValueError(
                f"{type(self).__name__} needs a starting sequence: pass "
                "initial_params={'tokens': mlm.encode(text)} (or a [C, L] batch for C "
                "vectorised chains) to pyro.infer.MCMC"
            )
        tokens = self._initial if self._vectorised else self._initial[0]
        return {"tokens": tokens.cpu()}

    @initial_params.setter
    def initial_params(self, params: dict[str, torch.Tensor]) -> None:
        if not isinstance(params, dict) or set(params) != {"tokens"}:
            raise ValueError(
                f"initial_params must be {{'tokens': LongTensor[L] or [C, L]}}, got "
                f"{params if not isinstance(params, dict) else sorted(params)}"
            )
        tokens = check_tokens(params["tokens"], self.energy.mlm, "initial tokens")
        if tokens.dim() > 2:
            raise ValueError(
                f"initial tokens must be [L] or [C, L] (C vectorised chains), got shape "
                f"{tuple(tokens.shape)}; with pyro's num_chains=P pass [P, L] or [P, C, L]"
            )
        self._vectorised = tokens.dim() == 2
        self._initial = tokens.reshape(-1, tokens.shape[-1]).to(self.energy.mlm.device)
        self._free_mask()  # validate now, at the boundary
        worker = calling_pyro_worker()
        if worker is not None:
            self._per_worker[worker] = self._initial

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        """Restore this process's initial tokens, evaluate the start state, reset records."""
        chain = pyro_worker_index()
        if chain is not None:
            if chain not in self._per_worker:
                raise RuntimeError(
                    "pyro ran this kernel in a parallel worker without its chain's initial "
                    "tokens; run vectorised chains instead: initial_params={'tokens': "
                    "LongTensor[C, L]} with num_chains=1"
                )
            self._initial = self._per_worker[chain]
            # a forked worker inherits the parent's OpenMP pool in a broken state and
            # deadlocks in its first parallel op; parallel chains share the cores anyway
            torch.set_num_threads(1)
        start = self.initial_params["tokens"]  # raises a clear error when none was given
        tokens = self._initial
        assert tokens is not None
        self._reset_counters()
        self._warmup_steps = warmup_steps
        mask = self._free_mask()
        self._free = mask
        self._free_count = mask.sum(-1)
        self._free_table = _position_table(mask)
        self._sweep = int(self._free_count.max())
        self._proposable = self.energy.mlm.proposable_ids.to(tokens.device)
        extra = getattr(self, "extra_potential", None)
        self.model = mlm_model(self.energy, start, mask.reshape(start.shape).cpu(), extra)
        self._start(tokens)
        self._records = _empty_records()

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One sweep (``proposals_per_sample`` proposals in every chain)."""
        current = self._current_tokens()
        tokens = params["tokens"].reshape(current.shape).to(current.device)
        if not torch.equal(tokens, current):
            self._start(check_tokens(tokens, self.energy.mlm))
        steps = self.proposals_per_sample or self._sweep
        sums = torch.zeros(3, tokens.shape[0], device=tokens.device)
        with torch.no_grad():
            for _ in range(steps):
                info = self._step(self._next_positions())
                sums += torch.stack(
                    [info.accept_prob, info.is_accepted.float(), info.is_novel.float()]
                )
        self._count(steps * tokens.shape[0], int(sums[1].sum()), int(sums[2].sum()))
        self._t += 1
        fractions = (sums / steps).cpu()
        self.last_sweep = SweepInfo(fractions[0], fractions[1], fractions[2])
        if self._t > self._warmup_steps:
            self._records["energy"].append(self._current_energy().cpu())
            self._records["accept_prob"].append(self.last_sweep.accept_prob)
            self._records["acceptance_rate"].append(self.last_sweep.acceptance_rate)
            self._records["is_novel"].append(self.last_sweep.is_novel)
        out = self._current_tokens().cpu()
        return {"tokens": out if self._vectorised else out[0]}

    def logging(self) -> OrderedDict[str, str]:
        n = max(self._proposals, 1)
        return OrderedDict(
            [
                ("acc. rate", f"{self._accepted / n:.3f}"),
                ("novel", f"{self._novel / n:.3f}"),
            ]
        )

    def diagnostics(self) -> dict[str, Any]:
        """Acceptance rates after warm-up, ``divergences: []`` and the per-draw records.

        Records are tensors ``[draws, C]``: ``energy`` (total, untempered),
        ``accept_prob`` (mean min(1, alpha) over the sweep), ``acceptance_rate`` and
        ``is_novel`` (fractions of the sweep's proposals accepted / accepted and new).
        """
        n = max(self._sample_proposals, 1)
        records = {k: torch.stack(v) if v else torch.empty(0) for k, v in self._records.items()}
        return {
            "divergences": [],
            "acceptance rate": self._sample_accepted / n,
            "novel acceptance rate": self._sample_novel / n,
            "initial_tokens": self._initial.cpu() if self._initial is not None else None,
            "temperature": self.energy.temperature,
            **records,
        }

    def cleanup(self) -> None:
        """Drop the cached state; idempotent (pyro calls it twice)."""
        self._state = None

    # ------------------------------------------------------------ checkpoints
    @property
    def current_energy(self) -> torch.Tensor:
        """Energy ``[C]`` of the chains' current sequences (after :meth:`setup`)."""
        if self._state is None:
            raise RuntimeError("the kernel has no state yet: call setup() first")
        return self._current_energy()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the chains exactly (with the RNG state).

        The cached energies and conditionals are saved as well: recomputing them in a
        batch of another shape could change their last bits, and with them a draw.
        """
        if self._state is None:
            raise RuntimeError("the kernel has no state yet: call setup() first")
        return {
            "sweep": self._t,
            "cursor": self._cursor,
            "counts": {name: getattr(self, name) for name in _COUNTERS},
            "state": _to_cpu(self._state),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (call after :meth:`setup` with the same start)."""
        if self._state is None:
            raise RuntimeError("call setup() before load_state_dict()")
        state = _to_device(saved["state"], self._free.device)
        tokens = state.tokens if isinstance(state, MHState) else state
        if tokens.shape != self._current_tokens().shape:
            raise ValueError(
                f"the saved chains have shape {tuple(tokens.shape)}, this run "
                f"{tuple(self._current_tokens().shape)}: it is not the same run"
            )
        self._restore(state)
        self._t = int(saved["sweep"])
        self._cursor = int(saved["cursor"])
        for name in _COUNTERS:
            setattr(self, name, int(saved["counts"][name]))

    # ------------------------------------------------------------ internals
    def _free_mask(self) -> torch.Tensor:
        assert self._initial is not None
        mask = resolve_free(self.free, self._initial, self.energy.mlm)
        tokens = self._initial
        outside = mask & ~torch.isin(tokens, self.energy.mlm.proposable_ids.to(tokens.device))
        if bool(outside.any()):
            pos = sorted(set(outside.nonzero()[:, -1].tolist()))
            raise ValueError(
                f"free positions {pos} hold tokens outside the proposable set, where the "
                "target has no mass; start from proposable tokens there or widen "
                "MaskedLM(proposable=...)"
            )
        return mask

    def _next_positions(self) -> torch.Tensor:
        count = self._free_count
        if self.scan == "random":
            index = (torch.rand(count.shape, device=count.device) * count).long()
            index = torch.minimum(index, count - 1)
        else:
            index = self._cursor % count
            self._cursor += 1
        return self._free_table.gather(1, index.unsqueeze(1)).squeeze(1)

    def _reset_counters(self) -> None:
        self._t = 0
        self._warmup_steps = 0
        self._cursor = 0
        self._proposals = self._accepted = self._novel = 0
        self._sample_proposals = self._sample_accepted = self._sample_novel = 0

    def _count(self, proposals: int, accepted: int, novel: int) -> None:
        """Add one sweep's counts (to the after-warm-up counts too, past warm-up)."""
        self._proposals += proposals
        self._accepted += accepted
        self._novel += novel
        if self._t >= self._warmup_steps:
            self._sample_proposals += proposals
            self._sample_accepted += accepted
            self._sample_novel += novel

    def _propose(self, logits: torch.Tensor, current: torch.Tensor) -> Proposal:
        return masked_conditional_proposal(
            logits, current, self._proposable, self.proposal_temperature
        )

    def _start(self, tokens: torch.Tensor) -> None:
        raise NotImplementedError

    def _step(self, positions: torch.Tensor) -> MHInfo:
        raise NotImplementedError

    def _current_tokens(self) -> torch.Tensor:
        raise NotImplementedError

    def _restore(self, state: Any) -> None:
        self._state = state

    def _current_energy(self) -> torch.Tensor:
        raise NotImplementedError


class MaskedMH(_SweepKernel):
    r"""Metropolis-Hastings with the MLM's masked conditionals as proposals.

    Targets :math:`\pi(X) \propto \exp(-(E(X) + E_\text{extra}(X)) / T)` exactly. A
    proposal picks a free position :math:`t` (uniformly, or in order with
    ``scan="systematic"``), draws :math:`x'_t \sim q(\cdot \mid X_{\setminus t})`
    restricted to the proposable tokens (at ``proposal_temperature``), and accepts with

    .. math::

        \min\Big(1,\ \exp\big((E(X) - E(X'))/T\big)\,
        \frac{q(x_t \mid X_{\setminus t})}{q(x'_t \mid X_{\setminus t})}\Big)

    (derivation: :func:`pyro_mlm.mh.log_acceptance_ratio`). The current state's energy
    and conditionals are cached, so a proposal costs one batch of ``|free|`` masked
    rows per chain, and a self-proposal costs nothing.

    Parameters
    ----------
    energy
        The MLM energy (its ``temperature`` is :math:`T`).
    free
        Positions the sampler may change (bool mask ``[L]`` / ``[C, L]`` or a list of
        positions); default every non-special position.
    scan
        ``"random"`` or ``"systematic"`` position order.
    proposal_temperature
        :math:`\tau` of the proposal; the chain stays exact for any :math:`\tau`.
    proposals_per_sample
        Proposals per ``sample()`` call (default: one sweep, ``|free|``).
    extra_potential
        Optional ``tokens [N, L] -> energy [N]`` added to the MLM energy.

    Examples
    --------
    >>> kernel = MaskedMH(MLMEnergy(mlm))                                # doctest: +SKIP
    >>> mcmc = MCMC(kernel, num_samples=200, warmup_steps=50,
    ...             initial_params={"tokens": ids.repeat(4, 1)})          # doctest: +SKIP
    >>> mcmc.run()                                                       # doctest: +SKIP
    """

    def __init__(
        self,
        energy: MLMEnergy,
        free: object = None,
        scan: Scan = "random",
        proposal_temperature: float = 1.0,
        proposals_per_sample: int | None = None,
        extra_potential: ExtraPotential | None = None,
    ) -> None:
        super().__init__(energy, free, scan, proposal_temperature, proposals_per_sample)
        if extra_potential is not None and not callable(extra_potential):
            raise TypeError("extra_potential must be a callable tokens [N, L] -> energy [N]")
        self.extra_potential = extra_potential
        self.target = Target(energy, [] if extra_potential is None else [extra_potential])

    def _evaluate(self, tokens: torch.Tensor, chain_index: torch.Tensor) -> Evaluation:
        return self.target.evaluate(tokens, self._free[chain_index], chains=chain_index)

    def _start(self, tokens: torch.Tensor) -> None:
        chains = torch.arange(tokens.shape[0], device=tokens.device)
        result = self._evaluate(tokens, chains)
        bad = result.energy == float("inf")
        if bool(bad.any()):
            raise ValueError(
                f"chains {bad.nonzero().flatten().tolist()} start where the energy is inf "
                "(a sequence an extra potential forbids); MH could never leave such a "
                "state: start from an allowed sequence"
            )
        self._state = MHState(tokens, result.energy, result.logits)

    def _step(self, positions: torch.Tensor) -> MHInfo:
        assert self._state is not None
        self._state, info = mh_step(
            self._state, positions, self._propose, self._evaluate, self.target.temperature
        )
        return info

    def _current_tokens(self) -> torch.Tensor:
        assert self._state is not None
        return self._state.tokens

    def _current_energy(self) -> torch.Tensor:
        assert self._state is not None
        return self._state.energy


class MaskedGibbs(_SweepKernel):
    """Degenerate masked Gibbs (Wang & Cho 2019): always accept the conditional's draw.

    Same interface as :class:`MaskedMH`. Each update costs one masked row per chain.
    Because an MLM's conditionals are not those of any single joint distribution, this
    chain does **not** target :math:`\\propto e^{-E/T}`; it is here as the baseline the
    paper compares against. Energies are evaluated once per draw, for the records.
    """

    _energy_cache: torch.Tensor | None = None

    def _start(self, tokens: torch.Tensor) -> None:
        self._state = tokens
        self._energy_cache = None

    def _restore(self, state: Any) -> None:
        self._start(state)

    def _step(self, positions: torch.Tensor) -> MHInfo:
        self._state, info = gibbs_step(
            self._state, positions, self._propose, self.energy.conditionals
        )
        self._energy_cache = None
        return info

    def _current_tokens(self) -> torch.Tensor:
        assert self._state is not None
        return self._state

    def _current_energy(self) -> torch.Tensor:
        if self._energy_cache is None:
            tokens = self._current_tokens()
            chains = torch.arange(tokens.shape[0], device=tokens.device)
            result = Target(self.energy).evaluate(
                tokens, self._free, chains=chains, keep_conditionals=False
            )
            self._energy_cache = result.energy
        return self._energy_cache


_COUNTERS = (
    "_proposals",
    "_accepted",
    "_novel",
    "_sample_proposals",
    "_sample_accepted",
    "_sample_novel",
)


class SweepInfo(NamedTuple):
    r"""Per-chain fractions ``[C]`` over the proposals of the latest sweep.

    Attributes
    ----------
    accept_prob
        Mean :math:`\min(1, \alpha)`.
    acceptance_rate
        Fraction of proposals accepted.
    is_novel
        Fraction accepted and different from the current token.
    """

    accept_prob: torch.Tensor
    acceptance_rate: torch.Tensor
    is_novel: torch.Tensor


def _to_cpu(state: Any) -> Any:
    if isinstance(state, MHState):
        return MHState(*(t.cpu() for t in state))
    return state.cpu()


def _to_device(state: Any, device: torch.device) -> Any:
    if isinstance(state, MHState):
        return MHState(*(t.to(device) for t in state))
    return state.to(device)


def _empty_records() -> dict[str, list[torch.Tensor]]:
    return {"energy": [], "acceptance_rate": [], "is_novel": [], "accept_prob": []}


def _position_table(mask: torch.Tensor) -> torch.Tensor:
    """``[C, n_max]``: row ``c`` lists chain ``c``'s free positions in order (padded)."""
    count = mask.sum(-1)
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)
    table = order[:, : int(count.max())]
    return table
