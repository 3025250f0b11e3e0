"""WSGI entry point: ``gunicorn wsgi:app``."""

from hookhub import create_app

app = create_app()
