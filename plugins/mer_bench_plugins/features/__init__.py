"""Built-in feature extractor plugins."""
