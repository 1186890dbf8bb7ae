"""Holds the ``sitecustomize.py`` that ``aiohttp-waiterfix-run`` puts first on PYTHONPATH.

This directory is put on ``sys.path`` itself; nothing imports it as a package.
"""
