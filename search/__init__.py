"""How a model is found: evolutionary group search and differentiable cell search."""
