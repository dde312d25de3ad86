"""The real-time scorer, decisions, explanations, served-feature logging and the analyst views."""
