"""Simulated traction tables speaking the real wire protocols.

A simulator is a physics model (:mod:`simulators.physics`) served by a protocol server. It uses the
register maps and codecs of :mod:`devices` and never imports ``session`` or the application.
"""
