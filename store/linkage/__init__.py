"""Probabilistic record linkage (Fellegi–Sunter) for identification by demographics.

- :mod:`store.linkage.compare`: a record and a register row as one comparable shape, and their comparison
  vector (a level per field: exact, Jaro-Winkler bands, initials, day/month transposed, one digit off, …);
- :mod:`store.linkage.params`: the m and u probabilities of each level, term frequencies of names and
  postnummer, the prior; stored with the store (``linkage_parameters``) and cached per process;
- :mod:`store.linkage.estimate`: estimating them offline from the register (u, term frequencies) and, by EM
  over comparison vectors of blocked pairs, from a sample of client records (m), as splink does.

Identification (:mod:`store.matching`) only reads the parameters: a per-record lookup, no estimation.
"""
