"""sweepflow's command line: `sweepflow <command>` runs one of the flows (see `sweepflow.cli`)."""
