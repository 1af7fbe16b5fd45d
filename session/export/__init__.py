"""Renderers of the documentation model: one module per format.

- :mod:`session.export.json_doc`: the documentation as JSON (schema ``session/schemas/documentation-v2.json``)
- :mod:`session.export.csv_lines`: billing lines as CSV
- :mod:`session.export.pdf_note`: the clinical note with the force/time plot
- :mod:`session.export.fhir_bundle`: a FHIR R4B bundle (Procedure, Device, Observations, ChargeItem)
- :mod:`session.export.x12_837p`: an 837P service-line fragment (HI, LX, SV1, DTP)
"""
