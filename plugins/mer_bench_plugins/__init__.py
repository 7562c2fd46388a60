"""The plugins that ship with mer-bench. They register through the same hooks as any third-party plugin."""
