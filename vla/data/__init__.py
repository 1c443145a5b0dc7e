"""Datasets: the zarr episode store, recorder, collection, windows sampler, normaliser, LeRobot I/O.

Import submodules directly (`from vla.core.normalizer import Normalizer`); this package imports nothing
heavy on its own so that `vla.core.normalizer` stays cheap for tokenizers and processors.
"""
