"""The code of each fix, one module per fix; ``_registry.py`` declares what each one changes.

A module here is imported only once aiohttp has been imported and the fix is
going to be applied.
"""
