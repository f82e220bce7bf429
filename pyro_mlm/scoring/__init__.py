"""Scoring sequences with both energies: in this process (:mod:`.score`) or on Ray
(:mod:`.score_ray`)."""
