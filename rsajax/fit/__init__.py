"""Fitting a potential to a measured structure factor by differentiable simulation.

- :mod:`rsajax.fit.objective`: the neutron S(Q) objective against a target curve over a Q range.
- :mod:`rsajax.fit.sampling`: NVT frames of a model (with their neighbour lists) for reweighting.
- :mod:`rsajax.fit.reweight`: DiffTRe-style trajectory reweighting and its effective sample size.
- :mod:`rsajax.fit.backprop`: the same objective's gradient by backpropagation through short
  checkpointed NVE windows.
- :mod:`rsajax.fit.teacher`: energy/force loss and errors on teacher data (keeps the model honest).
- :mod:`rsajax.fit.loop`: the outer loop (optax) with fresh sampling when the sample size drops.
"""
