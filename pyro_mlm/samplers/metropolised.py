r"""Metropolised single-site MH (Liu 1996; NumPyro's ``modified`` Gibbs).

Like :mod:`~pyro_mlm.samplers.mh`, but the proposal excludes the current token and
renormalises, :math:`\tilde q(v) = q(v) / (1 - q(x_t))` for :math:`v \ne x_t`; the
Hastings ratio becomes

.. math::

    \alpha = e^{\beta (E(X) - E(X'))}\,
        \frac{\tilde q(x_t \mid X'_{\setminus t})}{\tilde q(x'_t \mid X_{\setminus t})}
      = e^{\beta (E(X) - E(X'))}\,
        \frac{q(x_t) / (1 - q(x'_t))}{q(x'_t) / (1 - q(x_t))},

both :math:`q` from the same cached row (:math:`X'_{\setminus t} = X_{\setminus t}`).
It never wastes a proposal on the current token, but every proposal then pays
``|free|`` rows, where plain MH's self-proposals are free: an option, not a default.
"""

from __future__ import annotations

import torch

from pyro_mlm.samplers.mh import MH
from pyro_mlm.samplers.proposals import Proposal, metropolised_proposal


class MetropolisedMH(MH):
    """Single-site MH with Liu's Metropolised proposal; state :class:`~.transitions.MHState`."""

    name = "metropolised"

    def draw(
        self, logits: torch.Tensor, current: torch.Tensor, generator: torch.Generator | None
    ) -> Proposal:
        return metropolised_proposal(
            logits, current, self.proposable, self.proposal_temperature, generator
        )
