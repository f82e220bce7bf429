"""The exact single-mutant landscape (``pyro-mlm scan``): every 1-edit neighbour's exact
energy change beside the masked-marginal heuristic (:mod:`.mutants`), the resumable scan
directory (:mod:`.scan_file`), its pictures and figures (:mod:`.heatmap`, :mod:`.compare`)
and its scale-out on Ray (:mod:`.scan_ray`)."""
