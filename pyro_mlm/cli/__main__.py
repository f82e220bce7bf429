"""``python -m pyro_mlm.cli``."""

from pyro_mlm.cli import main

raise SystemExit(main())
