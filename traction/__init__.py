"""The application: the ``traction`` command and the HTTP service, wiring the layers together."""
