"""Classic entry point (``python setup.py --version``, tools that look for a
``setup.py``). All metadata lives in ``pyproject.toml``; setuptools reads it
from there, so this file must stay empty of arguments."""
from setuptools import setup

setup()
