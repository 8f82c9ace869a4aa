"""Prints a line, then sleeps long enough to be interrupted or killed by a test."""
import time

print("sleeping", flush=True)
time.sleep(120)
print("woke up")
