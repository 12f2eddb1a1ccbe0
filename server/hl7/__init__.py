"""The HL7 v2 over MLLP face: PDQ (QBP^Q22), PIX (QBP^Q23), legacy QRY^A19 and felles hjelpenummer (QBP^Q24).

Layers, outside in: :mod:`~server.hl7.listener` (asyncio, bytes only) → :mod:`~server.hl7.framing`
(sans-I/O MLLP) → :mod:`~server.hl7.app` (charset, MSH, sender, acknowledgement mode) →
:mod:`~server.hl7.router` (table by type/trigger/version) → :mod:`~server.hl7.handlers` → replies from
:mod:`~server.hl7.ack` and :mod:`adapters.hl7`. The conformance profile is docs/hl7.md.
"""
