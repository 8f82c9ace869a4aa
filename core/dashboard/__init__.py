"""The operator dashboard: server-rendered pages over the store (docs/dashboard.md).

`app.create_app(config)` builds the Sanic app from the blueprints in `app.PAGES`; `server.DashboardServer`
runs it in a thread of its own (for `cronium dashboard` and `cronium serve`); `auth` decides who may
see and who may act; `render` holds the autoescaping Jinja2 environment. Part of the core, not a
plugin: it reads the store and never imports a plugin.
"""
