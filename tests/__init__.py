"""sweepflow's tests: one folder per `tasks/` package (plus flows/ and blocks/), helpers in support/."""
