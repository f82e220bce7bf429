"""The one Pyro ``MCMCKernel`` shell over any registered sampler.

``initial_params={"tokens": LongTensor[L]}`` runs one chain, ``[C, L]`` ``C`` vectorised
chains through the same forward passes; one ``sample()`` call is one sweep. Each draw has
float64 sites (token ids stay exact; Pyro's statistics take the mean of every site, which
an integer tensor refuses), so that ``MCMC.summary()`` / ``diagnostics()`` and
``arviz.from_pyro`` work with their defaults: ``energy`` (not divided by the temperature),
``hamming`` (to the first chain's start, one reference for every chain so that R-hat
compares one function), ``tokens`` (and ``length`` where the region's length varies).
Vectorised chains become Pyro chains (:class:`~pyro_mlm.pyro.parallel.ChainsFirst`):
``get_samples(group_by_chain=True)`` is ``[P * C, draws, ...]`` for ``P`` Pyro chains.
The shell holds the Pyro contract, the parallel-chain fix and records for ArviZ over one
:class:`~pyro_mlm.samplers.chain.Chain` (the run loop's driver too), seeded from torch's
global generator at ``setup`` (so ``pyro.set_rng_seed`` fixes a run).
:class:`~pyro_mlm.pyro.masked.MaskedMH` and ``MaskedGibbs`` are thin constructors over it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from pyro_mlm.energy import MLMEnergy
from pyro_mlm.pyro.parallel import (
    ChainsFirst,
    calling_pyro_unary_chain,
    calling_pyro_worker,
    worker_start,
)
from pyro_mlm.pyro.potential import ExtraPotential, mlm_model
from pyro_mlm.pyro.records import RECORDS_KEY, SUMMARY_SITES, SweepRecords, record_sweep
from pyro_mlm.region.layout import padded_start
from pyro_mlm.samplers import SAMPLERS, SweepInfo, SweepSampler
from pyro_mlm.samplers.builder import assemble, check_options
from pyro_mlm.samplers.chain import Chain
from pyro_mlm.samplers.lengths import check_length_settings
from pyro_mlm.samplers.options import SAMPLER_OPTIONS, check_sizes
from pyro_mlm.samplers.scan import SCANS, Scan
from pyro_mlm.target import Target
from pyro_mlm.validation import (
    check_initial_params,
    check_proposals,
    check_temperature,
    check_tokens,
    resolve_proposable_free,
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
    lengths, length_prior, length_moves
        ``(MIN, MAX)``: the free region's length is sampled too, one proposal per position
        of the longest region per sweep
        (:class:`~pyro_mlm.samplers.lengths.VariableLength`). Pyro's sites have one shape:
        ``tokens`` is padded to the longest region, a ``length`` site holds each draw's
        length, and ``hamming`` is the region's edit distance to the start's.
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
        lengths: tuple[int, int] | str | None = None,
        length_prior: str | torch.Tensor = "uniform",
        length_moves: int | None = None,
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
        check_options(  # the kernel's one check of its settings (sizes: with the start)
            sampler, options, temperature=energy.temperature,
            proposal_temperature=proposal_temperature,
        )  # fmt: skip
        self.lengths, self.length_prior, self.length_moves = check_length_settings(
            sampler, lengths, length_prior, length_moves, energy.mlm.max_length
        )
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
            **({"length": ChainsFirst(event_dim=0)} if self.lengths else {}),
        }
        # Pyro's option: the sites MCMC keeps (the tokens travel in diagnostics' records)
        self.save_params = [*SUMMARY_SITES, *(["length"] if self.lengths else [])]
        self.model: Any = None
        self.sampler: SweepSampler | None = None
        self.last_sweep: SweepInfo | None = None
        self._initial: torch.Tensor | None = None
        self._per_worker: dict[int, torch.Tensor] = {}
        self._reference_row: torch.Tensor | None = None
        self._vectorised = False
        self.chain: Chain | None = None
        self._rates = (0.0, 0.0)  # acceptance and novel rates of the last chains run
        self._logged: dict[str, str] = {}  # and their last progress fields
        self._records: dict[str, list[torch.Tensor]] = {}
        self._mask: torch.Tensor | None = None  # the padded free mask (lengths)

    # ------------------------------------------------------------ Pyro contract
    @property
    def initial_params(self) -> dict[str, torch.Tensor]:
        if self._initial is None:
            raise ValueError(
                f"{type(self).__name__} needs a starting sequence: pass "
                "initial_params={'tokens': mlm.encode(text)} (or a [C, L] batch for C "
                "vectorised chains) to pyro.infer.MCMC"
            )
        return self._sites(self._initial) if self.chain is None else self._sites()

    @initial_params.setter
    def initial_params(self, params: dict[str, torch.Tensor]) -> None:
        tokens = check_initial_params(params, self.energy.mlm)
        self._vectorised = tokens.dim() == 2
        self._initial = tokens.reshape(-1, tokens.shape[-1]).to(self.energy.mlm.device)
        self._mask = None
        mask = self._free_mask()  # validate now, at the boundary
        if self.sampler_name in SAMPLER_OPTIONS:  # sizes against what a region can reach
            reach = [self.lengths[1]] if self.lengths else mask.sum(-1).tolist()
            check_sizes(self.sampler_name, self.options, reach)
        if self.lengths is not None:  # padded to the longest region: one shape for Pyro
            mlm = self.energy.mlm
            pad, limit = mlm.pad_token_id, mlm.max_length
            self._initial, self._mask = padded_start(self._initial, mask, self.lengths, pad, limit)
        worker = calling_pyro_worker()
        if worker is not None:
            self._per_worker[worker] = self._initial
        # the Hamming reference: the first row of Pyro's chain 0 (sequential chains set
        # their rows one at a time, parallel workers all before any runs)
        if (worker if worker is not None else calling_pyro_unary_chain()) in (None, 0):
            self._reference_row = self._initial[:1].clone()

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        """Build the sampler, seed its generator, evaluate the start state, reset records."""
        self.chain = None  # initial_params reads the start, not a previous run's chains
        own = worker_start(self._per_worker)  # a parallel worker's own row (Pyro 1.9.2)
        if own is not None:
            self._initial = own
        start = self.initial_params["tokens"]  # raises a clear error when none was given
        tokens = self._initial
        assert tokens is not None
        mask = self._free_mask()
        # settings checked at construction, sizes with the start: not again here
        self.sampler = assemble(
            self.sampler_name, self.target, mask, self.options, scan=self.scan,
            proposal_temperature=self.proposal_temperature,
            proposals_per_sweep=self.proposals_per_sample, lengths=self.lengths,
            length_prior=self.length_prior, length_moves=self.length_moves,
        )  # fmt: skip
        generator = torch.Generator(device=tokens.device)
        generator.manual_seed(int(torch.randint(2**62, ())))  # from pyro.set_rng_seed
        self.model = mlm_model(
            self.energy, start, mask.reshape(start.shape).cpu(), self.extra_potential
        )
        self.chain = Chain.start(self.sampler, tokens, warmup=warmup_steps, generator=generator)
        self._records = {}

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One sweep of the sampler in every chain."""
        chain = self._chain()
        current = chain.tokens
        tokens = params["tokens"].reshape(current.shape).to(current.device, torch.long)
        if not torch.equal(tokens, current):  # pyro handed back tokens we did not produce
            chain.restart_at(check_tokens(tokens, self.energy.mlm))
        info = chain.step()
        self.last_sweep = info
        if chain.sweep > chain.warmup:
            record_sweep(self._records, info, chain.tokens, chain.last_seconds)
        return self._sites()

    def logging(self) -> OrderedDict[str, str]:
        if self.chain is None or self.last_sweep is None:
            return OrderedDict(self._logged)
        return OrderedDict(self.chain.progress(self.last_sweep))

    def diagnostics(self) -> dict[str, Any]:
        """Acceptance rates after warm-up, ``divergences: []``, the temperature and, under
        ``"draws"``, the kept draws' :class:`~pyro_mlm.pyro.records.SweepRecords` (token
        ids, every field of the sampler's sweep info and the sweep's wall time ``seconds``,
        as ``[draws, C, ...]`` tensors), which ``MCMC.diagnostics()`` prints as one line."""
        accepted, novel = self.chain.rates() if self.chain is not None else self._rates
        initial = self._initial.cpu() if self._initial is not None else None
        return {
            "divergences": [],
            "acceptance rate": accepted,
            "novel acceptance rate": novel,
            "temperature": self.target.temperature,
            RECORDS_KEY: SweepRecords.stacked(self._records, initial),
        }

    def cleanup(self) -> None:
        """Drop the chains (their rates stay for :meth:`diagnostics`); idempotent (pyro
        calls it twice)."""
        if self.chain is not None:
            self._rates, self._logged = self.chain.rates(), self.logging()
        self.chain = None

    # ------------------------------------------------------------ state and checkpoints
    @property
    def current_energy(self) -> torch.Tensor:
        """Energy ``[C]`` of the chains' current sequences (after :meth:`setup`)."""
        return self._chain().energy

    @property
    def state(self) -> Any:
        """The sampler's current state (a ``NamedTuple``), after :meth:`setup`."""
        return None if self.chain is None else self.chain.state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the chains exactly (:meth:`Chain.state_dict`)."""
        return self._chain().state_dict()

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (call after :meth:`setup` with the same start)."""
        if self.chain is None:
            raise RuntimeError("call setup() before load_state_dict()")
        self.chain.load_state_dict(saved)

    # ------------------------------------------------------------ internals
    def _chain(self) -> Chain:
        if self.chain is None:
            raise RuntimeError("the kernel has no state yet: call setup() first")
        return self.chain

    def _sites(self, tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The draw's sites (current state, or just ``tokens``), shaped as the user's start."""
        if tokens is not None:
            sites = {"tokens": tokens}
        else:
            current = self._chain().tokens
            sites = {
                "tokens": current.double(),
                "energy": self.current_energy.double(),
                **self._chain().sampler.draw_stats(current, self._reference()),
            }
        return {k: (v if self._vectorised else v[0]).cpu() for k, v in sites.items()}

    def _reference(self) -> torch.Tensor:
        """``[1, L]``: the Hamming distance's reference, the first chain's start (Pyro's
        chain 0's where it runs several)."""
        assert self._initial is not None and self._reference_row is not None
        return self._reference_row.to(self._initial.device)

    def _free_mask(self) -> torch.Tensor:
        assert self._initial is not None
        if self._mask is not None:
            return self._mask
        return resolve_proposable_free(self.free, self._initial, self.energy.mlm)
