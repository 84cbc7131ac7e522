r"""The ``pyg-relational`` console script.

It lives outside the ``pyg_relational`` package on purpose: importing the
package imports torch and PyG (seconds), and Ctrl-C during that import must
end the command with one line and exit status 130, not a traceback. The
command itself is :func:`pyg_relational.bench.cli.main`.
"""
import sys

__all__ = ['main']


def main(argv=None) -> int:
    try:
        from pyg_relational.bench.cli import main as bench_main
    except KeyboardInterrupt:
        sys.stderr.write('pyg-relational: interrupted\n')
        return 130
    return bench_main(argv)


if __name__ == '__main__':
    sys.exit(main())
