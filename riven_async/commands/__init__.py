"""The ``riven-async`` subcommands, one module per feature (config, items, status, import)."""
