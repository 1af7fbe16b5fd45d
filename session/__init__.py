"""A treatment session as a record: store, recorder, documentation, export and billing rules.

Subscribes to the records ``devices`` publishes; never speaks a wire protocol.
"""
