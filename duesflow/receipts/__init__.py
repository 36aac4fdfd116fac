"""Receipts: amounts in capitals and figures, and the commemorative receipt PDF (pure, no Flask, no DB)."""
