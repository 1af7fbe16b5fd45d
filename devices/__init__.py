"""Talking to traction tables and driving them safely.

This layer knows tables, transports, profiles, safety limits and the control loop. It knows nothing of
patients, databases or billing (see DESIGN.md); ``session`` and ``traction`` build on it.
"""
