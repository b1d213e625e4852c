"""``python -m controller.cli``: the ``qiki`` command without the console script."""

import sys

from controller.cli import main

sys.exit(main())
