"""The calorimeter application: CaloChallenge geometries and files, the reference shower
simulator, the shower codec, generation, the CaloChallenge evaluation and the
quality-versus-speed front. Built on the generic core (:mod:`physgen.core`,
:mod:`physgen.models`, :mod:`physgen.train`, :mod:`physgen.metrics`).
"""
