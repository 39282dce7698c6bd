"""HTTP integrations: a FastAPI router and a Flask blueprint exposing the auth flow.

- :mod:`mindmesh_auth.integrations.fastapi`: ``create_auth_router(auth)`` (needs the ``fastapi`` extra).
- :mod:`mindmesh_auth.integrations.flask`: ``create_auth_blueprint(auth)`` (needs the ``flask`` extra).

Both only bind the endpoints written once in
:mod:`mindmesh_auth.integrations._endpoints` (body parsing, tokens, cookies,
error mapping), so they answer identically; the route table, error mapping,
client-IP resolution and cookie settings are in
:mod:`mindmesh_auth.integrations._http`. See ``docs/integrations.md``.
"""
