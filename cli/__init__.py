"""Command-line entry points that join the engine to viz (neither imports the other)."""
