"""The app as gunicorn serves it, plus a bare endpoint to compare the callback path with."""

from server import create_app

app = create_app()
app.add_url_rule("/bare", "bare", lambda: "ok", methods=["POST"])
