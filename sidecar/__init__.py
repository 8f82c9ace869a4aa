"""cronium runtime-API sidecar: a small Sanic service that a job reaches as http://runtime-api:8081.

Run it with `python -m cronium.sidecar`; build the app with `cronium.sidecar.app.create_app`;
write tool plugins with `cronium.sidecar.tools.hookimpl`. This package never imports docker,
`cronium.core` or `cronium.plugins`: it runs in its own small image.
"""
