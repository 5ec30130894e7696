"""``python -m callto.link``: the same as the ``callto-link`` command."""

import sys

from callto.link.main import main

sys.exit(main())
