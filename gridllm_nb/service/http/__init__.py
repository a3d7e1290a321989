"""The HTTP face of the service: remotejobs v2, plus clearly marked local extensions.

``app`` has the routes, ``schema`` the request and answer models (they also
write the OpenAPI description), ``encode`` the answers' bytes, ``guards`` what
a request and a connection must satisfy before any route runs, and ``idle``
the shutdown of a background service nobody uses. FastAPI and uvicorn are
imported by these modules, never by this package, so ``gridllm-nb serve
--help`` works without them.
"""
