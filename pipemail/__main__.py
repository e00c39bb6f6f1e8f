"""``python -m pipemail check|sync ...`` (see :mod:`pipemail.cli`)."""

import sys

from pipemail.cli import main

sys.exit(main())
