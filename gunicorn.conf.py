"""gunicorn settings read from the working directory (``gunicorn usageproject.wsgi`` in README).

Django answers an over-long URL itself (414, problem+json under /api/, ``MAX_URL_LENGTH``), so
gunicorn's own limit on the request line is set above it: its plain-text 414 only comes for lines
beyond 8190 bytes, the most gunicorn allows.
"""

limit_request_line = 8190
