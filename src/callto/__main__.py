"""``python -m callto`` is the ``callto`` command."""

import sys

from callto.cli import main

sys.exit(main())
