"""Maths and pictures over arrays of draws: convergence diagnostics (:mod:`.diagnostics`),
plots (:mod:`.plots`) and ranked designs, marginals and logos (:mod:`.designs`)."""
