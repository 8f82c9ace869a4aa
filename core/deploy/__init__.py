"""Deployments: files that declare jobs (`files`), what they declare (`definition`), where they are
registered (`registry`), and the cron schedules they use (`cron`)."""
