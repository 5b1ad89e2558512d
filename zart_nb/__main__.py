"""``python -m zart_nb``: the ``zart`` command."""
import sys

from ._cli import main

sys.exit(main())
