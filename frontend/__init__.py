"""Templates and vendored static assets shared by every page."""
