"""How a model is trained: data sets, recipes, the training loop, evaluation, export."""
