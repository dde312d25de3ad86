"""The rider web UI and the driver console: server-rendered pages, htmx fragments, session auth.

Views are thin: they parse a form, call one service or selector and render. The trip page's
live status comes over a websocket (``rideshare.consumers``); the driver console is what moves
a trip along in the demo.
"""
