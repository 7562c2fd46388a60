"""Built-in model plugins."""
