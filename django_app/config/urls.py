"""URL routes: health probes at the root, the JSON API under /api/."""

from __future__ import annotations

from django.urls import path

from redisops import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("version", views.version, name="version"),
    path("api/tasks", views.enqueue_task, name="enqueue-task"),
    path("api/tasks/<str:task_id>", views.task_result, name="task-result"),
    path("api/publish", views.publish, name="publish"),
    path("api/pubsub", views.pubsub_status, name="pubsub-status"),
    path("api/stream", views.stream, name="stream"),
    path("api/limited", views.limited, name="limited"),
]

handler400 = "redisops.views.bad_request"
handler403 = "redisops.views.permission_denied"
handler404 = "redisops.views.not_found"
handler500 = "redisops.views.server_error"
