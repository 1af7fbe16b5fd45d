"""Data, not code: register maps, protocols, profiles, safety limits, payer rules and settings.

This file exists only so the files beside it can be found with ``importlib.resources`` both from a
source checkout and from an installed wheel.
"""
