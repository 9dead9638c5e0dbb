"""`python -m fusion_ros.cli`: the same command line as the `fusion-ros` script."""

import sys

from fusion_ros.cli.main import main

sys.exit(main())
