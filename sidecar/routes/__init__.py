"""One blueprint factory per concern: health, executions, variables, tool actions.

GET and DELETE routes read the request body (`ignore_body=False`): clients that send
`Content-Length: 0` on every request would otherwise make Sanic log a "body not consumed" error.
"""
