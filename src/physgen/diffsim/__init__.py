"""Differentiable simulation: events moved by gradients instead of re-simulated.

A simulator is written as a function ``x = g(u; theta)`` of fixed random numbers ``u`` and
parameters ``theta``. Keeping ``u`` fixed, every event is a differentiable function of
``theta``: one sample spans a whole range of parameters without statistical jitter between
them, fits become smooth, and designs can be optimised by gradient descent.

Modules (import what you use; nothing heavy is imported here):

- :mod:`physgen.diffsim.moving`: the general tools: pathwise derivatives per event,
  differentiable (soft) histograms with their bias, first-order moves, the score-function
  estimator for discrete parts, the Gaussian example.
- :mod:`physgen.diffsim.shower`: a differentiable Discrete-QCD dipole shower for
  e+e- -> partons (Andersson, Gustafson, Sjoegren, Nucl. Phys. B 463 (1996) 217; the
  event-moving construction of Nachman & Prestel, arXiv:2208.02274).
- :mod:`physgen.diffsim.observables`: e+e- event shapes (thrust, heavy-jet mass,
  C-parameter, Durham y23, multiplicity), differentiable in the momenta.
- :mod:`physgen.diffsim.alphas`: the one-sample fit of alpha_s(M_Z) and its brute-force check.
- :mod:`physgen.diffsim.calorimeter` and :mod:`physgen.diffsim.detector`: GFlash in PyTorch
  and the sampling-calorimeter optimisation.
"""
