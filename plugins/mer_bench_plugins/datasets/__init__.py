"""Built-in dataset plugins, one module each."""
