"""WSGI entry point for gunicorn: ``gunicorn config.wsgi``.

https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()
