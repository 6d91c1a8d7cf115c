"""Pure normalizers: raw bytes or payloads in, NormalizedMessage out. No I/O here."""
