"""Products: the catalog, its API and its page."""
