"""The report of config/deployments/scheduled-report.toml: counts its runs, outputs a summary."""
import os

import cronium

region = (cronium.input() or {}).get("region", "all regions")
runs = (cronium.get_variable("report_runs") or 0) + 1
cronium.set_variable("report_runs", runs)
context = cronium.event()
print(f"report #{runs} for {region} ({os.environ.get('REPORT_FORMAT', 'text')}), "
      f"trigger {context.get('metadata', {}).get('trigger', '?')}")
cronium.output({"region": region, "runs": runs})
