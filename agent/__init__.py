"""The agent: the run (``run_once``), CLI, settings, scheduler, lease, logging, metrics and health endpoint."""
