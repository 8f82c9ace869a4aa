"""Host services: the managed Redis and the image builds."""
