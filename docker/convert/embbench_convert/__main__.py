"""Entry point for `python -m embbench_convert`."""

import sys

from .cli import main

sys.exit(main())
