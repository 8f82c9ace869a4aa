"""The web dashboard (issue 15): server-rendered pages over the store."""
