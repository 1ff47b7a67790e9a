"""Evolutionary search of per-layer group counts of a binary MobileNet (Phan et al. 2020)."""
