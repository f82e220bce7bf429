"""What a design campaign reads in: which positions are free (:mod:`.sites`, ``--free``),
antibody numbering through ANARCI (:mod:`.numbering`), and Mask-Predict fills
(:mod:`.mask_predict`)."""
