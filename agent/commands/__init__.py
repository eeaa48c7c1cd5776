"""One module per CLI command; each has ``run(ctx: CommandContext, **options) -> int`` (the exit code)."""
