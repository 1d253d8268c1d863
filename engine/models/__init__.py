"""The registry and one file per model family: names, configs, install commands, build()."""
