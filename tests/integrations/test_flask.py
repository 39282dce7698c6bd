"""What only the Flask blueprint has: ``login_required``/``make_login_required`` and ``g.user``
in the app's own views. The HTTP API it shares with FastAPI is tested in ``test_http_api.py``."""

from __future__ import annotations

from _ci import require

require("flask")
require("peewee")

from flask import Flask, g  # noqa: E402

from mindmesh_auth.integrations.flask import create_auth_blueprint, make_login_required  # noqa: E402

from ._clients import Env, assert_error, bearer, flask_client, login, register  # noqa: E402


def test_login_required_sets_g_user(env: Env) -> None:
    bp = create_auth_blueprint(env.auth)
    app = Flask(__name__)
    app.register_blueprint(bp)
    login_required = make_login_required(env.auth)

    @app.get("/bound")
    @bp.login_required
    def bound() -> dict[str, str]:
        return {"id": g.user.id, "sid": g.auth_session_id}

    @app.get("/factory")
    @login_required
    def factory() -> dict[str, str]:
        return {"id": g.user.id, "sid": g.auth_session_id}

    client = flask_client(app)
    user = register(client)["user"]
    tokens = login(client, env)
    for path in ("/bound", "/factory"):
        assert client.get(path, headers=bearer(tokens)).json() == {"id": user["id"], "sid": tokens["session_id"]}
        r = client.get(path)
        assert_error(r, 401, "invalid_token")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
