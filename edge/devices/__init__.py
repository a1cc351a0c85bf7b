"""Serial devices: a pure framing module per device family plus the shared reader (serial_line)."""
