"""Fake cupyx for tests/test_fake_gpu.py (see tests/fake_gpu/cupy)."""
