"""Differentiable binary cell search (UBNAS / PC-DARTS style)."""
