"""The synthetic ride-sharing world: fraud scenarios, drift, delayed labels, load and replay."""
