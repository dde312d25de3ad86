"""Training sets from logs and labels, LightGBM training, the model registry and promotion."""
