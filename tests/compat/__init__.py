"""Compatibility with zero-to-jupyterhub 4.4.0: z2jh's own hub configuration drives
TychoSpawner on the test bed (see conftest.py, z2jh.py, cases.py, podcompare.py)."""
