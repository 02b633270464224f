"""WSGI entry point for gunicorn: ``gunicorn config.wsgi``.

https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()

# The web process does not start with a token file it cannot read: gunicorn's
# worker fails to boot, naming the file and the line (never its text).
from redisops.api_auth import check_tokens_at_start  # noqa: E402 - needs setup()

check_tokens_at_start()
