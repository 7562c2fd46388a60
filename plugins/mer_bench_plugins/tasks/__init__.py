"""Built-in tasks: what a run's models predict (quadrants; high or low arousal or valence)."""
