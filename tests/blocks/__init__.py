"""Tests of blocks/: site profiles and their resolution."""
