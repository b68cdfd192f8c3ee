"""Recommendation: data loaders, the leave-one-out protocol, recommenders and serving.

Nothing is imported here: the protocol and the recommenders need torch, and `pgen --help`
(which imports this package's CLI) must not load it.
"""
