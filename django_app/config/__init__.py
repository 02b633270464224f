"""Project package: importing it binds @shared_task to our Celery app.

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
"""

from .celery_app import app as celery_app

__all__ = ("celery_app",)
