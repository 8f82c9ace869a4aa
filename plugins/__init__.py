"""cronium's built-in plugins. Each module is one plugin, registered through the `cronium`
entry-point group exactly like a third-party plugin, and marks its implementations `trylast=True`
so an installed plugin can replace it."""
