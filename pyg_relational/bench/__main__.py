r"""``python -m pyg_relational.bench`` and the ``pyg-relational`` console
script (``pyg-relational bench [SUITE ...]``); see
:mod:`pyg_relational.bench.cli`."""
import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main())
