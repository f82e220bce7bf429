"""The one Pyro ``MCMCKernel`` shell over any registered sampler.

``initial_params={"tokens": LongTensor[L]}`` runs one chain; ``LongTensor[C, L]``
runs ``C`` vectorised chains through the same forward passes. One ``sample()`` call
is one sweep of the sampler (:mod:`pyro_mlm.samplers`). Each draw has three sites, so
that Pyro's ``MCMC.summary()`` / ``diagnostics()`` and ``arviz.from_pyro`` work with
their defaults: ``energy`` (the total energy, not divided by the temperature),
``hamming`` (positions differing from the first chain's start, one reference for every
chain so that R-hat compares one function) and ``tokens``, all float64
(token ids are exact integers; Pyro's statistics take the mean of every site, which
an integer tensor refuses). Vectorised chains become Pyro chains in the samples
(:class:`~pyro_mlm._pyro_parallel.ChainsFirst`): ``get_samples(group_by_chain=True)``
is ``[P * C, draws, ...]`` for ``P`` Pyro chains of ``C`` vectorised chains. The shell
holds the Pyro contract, the parallel-chain fix, a ``torch.Generator`` seeded from torch's global
generator at ``setup`` (so ``pyro.set_rng_seed`` fixes a run), records for ArviZ, and
checkpoints; records and checkpoints are generic over the sampler's ``NamedTuple``
fields. :class:`pyro_mlm.masked.MaskedMH` and :class:`~pyro_mlm.masked.MaskedGibbs` are thin
constructors over it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import torch
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from pyro_mlm._pyro_parallel import (
    ChainsFirst,
    calling_pyro_unary_chain,
    calling_pyro_worker,
    pyro_worker_index,
)
from pyro_mlm.diagnostics import hamming
from pyro_mlm.energy import MLMEnergy
from pyro_mlm.potential import ExtraPotential, mlm_model
from pyro_mlm.samplers import SAMPLERS, SweepInfo, SweepSampler, build_sampler
from pyro_mlm.samplers.base import load_state, state_dict
from pyro_mlm.samplers.options import SAMPLER_OPTIONS, check_settings
from pyro_mlm.samplers.scan import SCANS, Scan
from pyro_mlm.target import Target
from pyro_mlm.validation import check_proposals, check_temperature, check_tokens, resolve_free

_COUNTERS = (
    "proposals",
    "accepted",
    "novel",
    "sample_proposals",
    "sample_accepted",
    "sample_novel",
)


class SamplerKernel(MCMCKernel):
    r"""Any registered sampler as a Pyro kernel, targeting :math:`\propto e^{-(E + E_x)/T}`.

    Parameters
    ----------
    energy
        The MLM energy (its ``temperature`` is :math:`T`).
    free
        Positions the sampler may change (bool mask ``[L]`` / ``[C, L]`` or a list of
        positions); default every non-special position.
    sampler
        A name in :data:`pyro_mlm.samplers.SAMPLERS` (``"mh"``, ``"block"``, ...).
    scan
        ``"random"`` or ``"systematic"`` position order.
    proposal_temperature
        :math:`\tau` of the proposal; an exact sampler stays exact for any :math:`\tau`.
    proposals_per_sample
        Proposals per ``sample()`` call (default: one sweep, ``|free|``).
    extra_potential
        Optional ``tokens [N, L] -> energy [N]`` added to the MLM energy.
    **options
        The sampler's own settings (e.g. ``block_size=2`` for ``"block"``).

    Examples
    --------
    >>> kernel = SamplerKernel(MLMEnergy(mlm), sampler="block", block_size=2)  # doctest: +SKIP
    >>> mcmc = MCMC(kernel, num_samples=100, initial_params={"tokens": ids})  # doctest: +SKIP
    """

    def __init__(
        self,
        energy: MLMEnergy,
        free: object = None,
        sampler: str = "mh",
        *,
        scan: Scan = "random",
        proposal_temperature: float = 1.0,
        proposals_per_sample: int | None = None,
        extra_potential: ExtraPotential | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(energy, MLMEnergy):
            raise TypeError(
                f"expected an MLMEnergy, got {type(energy).__name__}; build one with "
                "MLMEnergy(MaskedLM(model, tokenizer))"
            )
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; registered: {sorted(SAMPLERS)}")
        if scan not in SCANS:
            raise ValueError(f"scan must be 'random' or 'systematic', got {scan!r}")
        check_proposals(proposals_per_sample, "proposals_per_sample")
        if extra_potential is not None and not callable(extra_potential):
            raise TypeError("extra_potential must be a callable tokens [N, L] -> energy [N]")
        if sampler in SAMPLER_OPTIONS:  # a run-time registration has no row: its own check
            check_settings(
                sampler, options, temperature=energy.temperature,
                proposal_temperature=proposal_temperature,
            )  # fmt: skip
        self.energy = energy
        self.free = free
        self.sampler_name = sampler
        self.scan: Scan = scan
        self.proposal_temperature = check_temperature(proposal_temperature, "proposal_temperature")
        self.proposals_per_sample = proposals_per_sample
        self.extra_potential = extra_potential
        self.options = options
        self.target = Target(energy, [] if extra_potential is None else [extra_potential])
        # not transforms of a support: they fold vectorised chains into Pyro's chains
        self.transforms: dict[str, Any] = {
            "tokens": ChainsFirst(event_dim=1),
            "energy": ChainsFirst(event_dim=0),
            "hamming": ChainsFirst(event_dim=0),
        }
        self.model: Any = None
        self.sampler: SweepSampler | None = None
        self.last_sweep: SweepInfo | None = None
        self._initial: torch.Tensor | None = None
        self._per_worker: dict[int, torch.Tensor] = {}
        self._reference_row: torch.Tensor | None = None
        self._vectorised = False
        self._state: Any = None
        self._generator: torch.Generator | None = None
        self._energy: torch.Tensor | None = None
        self._records: dict[str, list[torch.Tensor]] = {}
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
        return self._sites(self._initial) if self._state is None else self._sites()

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
        # the Hamming reference: the first row of Pyro's chain 0 (sequential chains set
        # their rows one at a time, parallel workers all before any runs)
        if (worker if worker is not None else calling_pyro_unary_chain()) in (None, 0):
            self._reference_row = self._initial[:1].clone()

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        """Build the sampler, seed its generator, evaluate the start state, reset records."""
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
        self.sampler = build_sampler(
            self.sampler_name,
            self.target,
            mask,
            scan=self.scan,
            proposal_temperature=self.proposal_temperature,
            proposals_per_sweep=self.proposals_per_sample,
            **self.options,
        )
        self._generator = torch.Generator(device=tokens.device)
        self._generator.manual_seed(int(torch.randint(2**62, ())))  # from pyro.set_rng_seed
        self.model = mlm_model(
            self.energy, start, mask.reshape(start.shape).cpu(), self.extra_potential
        )
        state = self.sampler.init(tokens)
        self._set_state(self.sampler.end_warmup(state) if warmup_steps == 0 else state)
        self._records = {}

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One sweep of the sampler in every chain."""
        assert self.sampler is not None
        current = self._current_tokens()
        tokens = params["tokens"].reshape(current.shape).to(current.device, torch.long)
        if not torch.equal(tokens, current):  # pyro handed back tokens we did not produce
            beta = getattr(self._state, "beta", None)
            fresh = self.sampler.init(check_tokens(tokens, self.energy.mlm), beta)
            self._set_state(fresh._replace(cursor=self._state.cursor, rows=self._state.rows))
        tick = time.perf_counter()
        state, info = self.sampler.step(self._state, self._generator)
        if self._t + 1 == self._warmup_steps:  # the last warm-up sweep: adaptation stops
            state = self.sampler.end_warmup(state)
        self._set_state(state)
        self.last_sweep = info
        proposals = self.sampler.proposals * tokens.shape[0]
        self._count(
            proposals,
            round(float(info.acceptance_rate.sum()) * self.sampler.proposals),
            round(float(info.is_novel.sum()) * self.sampler.proposals),
        )
        self._t += 1
        if self._t > self._warmup_steps:
            seconds = torch.full(info.rows.shape, time.perf_counter() - tick)
            self._records.setdefault("seconds", []).append(seconds)
            for name, value in info._asdict().items():
                self._records.setdefault(name, []).append(value.cpu())
        return self._sites()

    def logging(self) -> OrderedDict[str, str]:
        n = max(self._counts["proposals"], 1)
        out = OrderedDict(
            [
                ("acc. rate", f"{self._counts['accepted'] / n:.3f}"),
                ("novel", f"{self._counts['novel'] / n:.3f}"),
            ]
        )
        swaps = getattr(self.last_sweep, "swap_rate", None)
        if swaps is not None:  # replica exchange: the latest sweep's rate per pair
            out["swap"] = "/".join(f"{float(r):.2f}" for r in swaps.float().mean(0))
        regenerations = getattr(self.last_sweep, "regenerations", None)
        if regenerations is not None and float(regenerations.sum()) > 0:
            accepted = self.last_sweep.regen_accepted  # type: ignore[union-attr]
            out["regen acc."] = f"{float(accepted.sum() / regenerations.sum()):.2f}"
        return out

    def diagnostics(self) -> dict[str, Any]:
        """Acceptance rates after warm-up, ``divergences: []`` and the per-draw records.

        The energy is not here: it is a sample site (``mcmc.get_samples()["energy"]``),
        and ``MCMC.diagnostics()`` would let a record of the same name hide its R-hat.

        Records are tensors ``[draws, C]``: every field of the sampler's sweep info
        (``accept_prob``, ``acceptance_rate``, ``is_novel``, ``rows``, ...), and
        ``seconds``, the sweep's wall time.
        """
        n = max(self._counts["sample_proposals"], 1)
        records = {k: torch.stack(v) for k, v in self._records.items()}
        for name in ("seconds", *SweepInfo._fields):
            records.setdefault(name, torch.empty(0))
        return {
            "divergences": [],
            "acceptance rate": self._counts["sample_accepted"] / n,
            "novel acceptance rate": self._counts["sample_novel"] / n,
            "initial_tokens": self._initial.cpu() if self._initial is not None else None,
            "temperature": self.target.temperature,
            **records,
        }

    def cleanup(self) -> None:
        """Drop the cached state; idempotent (pyro calls it twice)."""
        self._state = None
        self._energy = None

    # ------------------------------------------------------------ state and checkpoints
    @property
    def current_energy(self) -> torch.Tensor:
        """Energy ``[C]`` of the chains' current sequences (after :meth:`setup`)."""
        if self._state is None or self.sampler is None:
            raise RuntimeError("the kernel has no state yet: call setup() first")
        if self._energy is None:
            self._energy = self.sampler.energy(self._state)
        return self._energy

    @property
    def state(self) -> Any:
        """The sampler's current state (a ``NamedTuple``), after :meth:`setup`."""
        return self._state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the chains exactly: state, generator, counters.

        The cached energies and conditionals are saved as well: recomputing them in a
        batch of another shape could change their last bits, and with them a draw.
        """
        if self._state is None or self._generator is None:
            raise RuntimeError("the kernel has no state yet: call setup() first")
        return {
            "sweep": self._t,
            "counts": dict(self._counts),
            "state": state_dict(self._state),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (call after :meth:`setup` with the same start)."""
        if self._state is None or self._generator is None:
            raise RuntimeError("call setup() before load_state_dict()")
        assert self.sampler is not None
        device = self._current_tokens().device
        state = load_state(type(self._state), saved["state"], device, self.sampler.NESTED)
        if state.tokens.shape != self._current_tokens().shape:
            raise ValueError(
                f"the saved chains have shape {tuple(state.tokens.shape)}, this run "
                f"{tuple(self._current_tokens().shape)}: it is not the same run"
            )
        self._set_state(state)
        self._generator.set_state(saved["generator"])
        self._t = int(saved["sweep"])
        self._counts = {name: int(saved["counts"][name]) for name in _COUNTERS}

    # ------------------------------------------------------------ internals
    def _set_state(self, state: Any) -> None:
        self._state = state
        self._energy = None

    def _sites(self, tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The draw's sites (current state, or just ``tokens``), shaped as the user's start."""
        if tokens is not None:
            sites = {"tokens": tokens}
        else:
            current = self._current_tokens()
            assert self._initial is not None
            sites = {
                "tokens": current.double(),
                "energy": self.current_energy.double(),
                "hamming": hamming(current, self._reference()).double(),
            }
        return {k: (v if self._vectorised else v[0]).cpu() for k, v in sites.items()}

    def _reference(self) -> torch.Tensor:
        """``[1, L]``: the Hamming distance's reference, the first chain's start (Pyro's
        chain 0's where it runs several)."""
        assert self._initial is not None and self._reference_row is not None
        return self._reference_row.to(self._initial.device)

    def _current_tokens(self) -> torch.Tensor:
        assert self._state is not None
        return self._state.tokens

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

    def _reset_counters(self) -> None:
        self._t = 0
        self._warmup_steps = 0
        self._counts = dict.fromkeys(_COUNTERS, 0)

    def _count(self, proposals: int, accepted: int, novel: int) -> None:
        """Add one sweep's counts (to the after-warm-up counts too, past warm-up)."""
        for prefix in ("", "sample_") if self._t >= self._warmup_steps else ("",):
            self._counts[prefix + "proposals"] += proposals
            self._counts[prefix + "accepted"] += accepted
            self._counts[prefix + "novel"] += novel
