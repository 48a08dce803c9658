"""Builder fixtures: small objects over the shared fixtures that say what a test sets up."""
