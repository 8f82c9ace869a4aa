"""A first cronium job: prints a few lines, reads its input, keeps a counter, sets its output."""
import time

import cronium

name = (cronium.input() or {}).get("name", "world")
print(f"hello, {name}!")
runs = (cronium.get_variable("hello_runs") or 0) + 1
cronium.set_variable("hello_runs", runs)
for i in range(3):
    print(f"tick {i}")
    time.sleep(0.1)
cronium.output({"greeting": f"hello, {name}", "runs": runs})
cronium.set_condition(True)
print("done")
