#!/usr/bin/env python
"""Django's command-line utility. Defaults to production settings; for
development use DJANGO_SETTINGS_MODULE=config.settings.local."""

from config.cli import main

if __name__ == "__main__":
    main()
