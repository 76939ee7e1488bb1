"""The silica melt-quench study: SR-MACE and RSA-MACE against the BKS teacher and experiment.

Run ``python experiments/silica_study/run.py --preset quick`` (see README.md there). Modules:
:mod:`.presets` (sizes and protocols), :mod:`.data` (stage 1, teacher data), :mod:`.training`
(stage 2), :mod:`.melt_quench` (stage 3, replicas in jax-md), :mod:`.analysis` (stage 4: the
summary, table and figures), :mod:`.run` (the command line).
"""
