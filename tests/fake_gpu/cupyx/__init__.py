"""Fake cupyx for the ``backend`` test fixture (see tests/fake_gpu/cupy)."""
