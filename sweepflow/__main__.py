"""`python -m sweepflow ...`: the same as the `sweepflow` command."""

import sys

from sweepflow.cli import main

sys.exit(main())
