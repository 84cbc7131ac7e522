r"""``python -m pyg_relational.bench``: the same command as ``pyg-relational``
(see :mod:`pyg_relational.bench.cli`)."""
import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main())
