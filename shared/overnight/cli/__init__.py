"""The `overnight` command line: one module per subcommand, loaded on use."""
