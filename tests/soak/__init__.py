"""The soak: ``python -m tests.soak --minutes N`` (see soak.py)."""
