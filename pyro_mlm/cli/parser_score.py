"""The ``score`` and ``scan`` commands' arguments (the commands that read sequences without
sampling them), and the help texts every command shares; torch-free like the parser."""

from __future__ import annotations

from typing import Any

from pyro_mlm.design.numbering import SCHEMES
from pyro_mlm.design.sites import FREE_HELP
from pyro_mlm.experts.declared import EXPERTS_HELP
from pyro_mlm.run.spec import BACKENDS, ENERGIES, ENERGY_OVER

ENERGY_HELP = (
    "norm: E(X) = -sum_t log p(x_t | X without t), the negative pseudo-log-likelihood "
    "(default); raw: E(X) = -sum_t s_t(X)[x_t], the MLM's raw logit (Goyal et al. 2022)"
)
THREADS_HELP = (
    "torch threads (default: the cores this process may use, or 1 when the load average "
    "already exceeds them; give 1 per process when several share the cores: 2 threads "
    "each on 2 shared cores ran 3-10x slower)"
)


def add_score_parser(sub: Any, models: str) -> None:
    """``pyro-mlm score``: energies of sequences."""
    c = sub.add_parser(
        "score", help="energies of sequences (norm = negative PLL, raw)", allow_abbrev=False
    )
    c.add_argument("sequences", nargs="*", help="sequences to score")
    c.add_argument("--file", help="FASTA or one sequence per line ('-' for stdin)")
    c.add_argument(
        "--free",
        help=f"the region scored, as sample's --free reads it: {FREE_HELP} (default: every "
        "position); with --energy-over free (the default with --free) the energy is sample's "
        "over that region, so score and sample print the same number",
    )
    c.add_argument(
        "--energy-over",
        choices=ENERGY_OVER,
        help="with --free: sum over the free positions (default) or over every position",
    )
    c.add_argument(
        "--numbering", choices=SCHEMES, default="imgt", help="for --free cdrh3 and the like"
    )
    c.add_argument(
        "--model",
        default="antiberty",
        help=f"packaged model ({models}), a local directory, or a Hugging Face hub id (default: "
        "antiberty, which reads heavy and light chains alike; the sequences scored at once "
        "may be of both)",
    )
    c.add_argument(
        "--energy",
        choices=[*ENERGIES, "both"],
        default="both",
        help=ENERGY_HELP.replace("(default)", "") + "; both: the two from one set of masked "
        "passes (default)",
    )
    c.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table: aligned columns for reading (default); json: a list with one object per "
        "sequence (its text, positions and energies)",
    )
    c.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    c.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    c.add_argument("--threads", type=int, help=THREADS_HELP)
    c.add_argument(
        "--out",
        help="write rows to this CSV as they are scored; a re-run skips the rows already there",
    )
    _actor_pool_arguments(c, "ray: Ray Data over a pool of model actors (needs --out)")


def add_scan_parser(sub: Any, model_help: str) -> None:
    """``pyro-mlm scan``: the exact single-mutant landscape."""
    a = sub.add_parser(
        "scan",
        help="exact energy change of every single mutant, beside the masked-marginal heuristic",
        allow_abbrev=False,
    )
    a.add_argument("--sequence", action="append", help="the wild type (repeat: several)")
    a.add_argument("--file", help="wild types, FASTA or one per line ('-' for stdin)")
    a.add_argument(
        "--free",
        help=f"the positions scanned, as sample reads --free: {FREE_HELP} (default all)",
    )
    a.add_argument("--model", default="sapiens", help=model_help)
    a.add_argument("--energy", choices=ENERGIES, default="norm", help=ENERGY_HELP)
    a.add_argument(
        "--energy-over",
        choices=ENERGY_OVER,
        help="the MLM energy summed over the scanned positions (default; sample's) or every "
        "position (|L| - 1 masked rows per mutant)",
    )
    a.add_argument(
        "--numbering",
        choices=SCHEMES,
        default="imgt",
        help="labels and regions by this scheme through ANARCI (default imgt; residue numbers "
        "without ANARCI)",
    )
    a.add_argument(
        "--expert",
        action="append",
        metavar="NAME[:key=value;...]",
        help="an expert in the target, as in sample (repeatable): its change is a column, and "
        f"a mutant a hard one forbids is marked forbidden: {EXPERTS_HELP}",
    )
    a.add_argument("--top", type=int, default=10, help="best mutations printed (default 10)")
    a.add_argument(
        "--out",
        default="runs/scan",
        help="directory for scan.csv and heatmap.png (default runs/scan); a re-run on it "
        "scans only the positions missing",
    )
    a.add_argument(
        "--pairs",
        type=int,
        metavar="K",
        help="also every pair of the K best single mutants: the double mutant's exact dE and "
        "the epistasis ddE = dE(a,b) - dE(a) - dE(b), in pairs.csv and pairs.png",
    )
    a.add_argument("--no-plot", action="store_true", help="no heatmap")
    a.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    a.add_argument("--threads", type=int, help=THREADS_HELP)
    a.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    _actor_pool_arguments(a, "ray: positions spread over a pool of model actors")


def _actor_pool_arguments(parser: Any, ray_help: str) -> None:
    """``--backend`` and the model-actor pool's settings (``score``, ``scan``)."""
    parser.add_argument("--backend", choices=BACKENDS, default="local", help=ray_help)
    parser.add_argument("--workers", type=int, help="model actors (Ray; default 1)")
    parser.add_argument(
        "--threads-per-worker", type=int, help="torch threads per actor (default 1)"
    )
    parser.add_argument("--address", help="Ray cluster to join (default: a local instance)")
