"""The one clock: epoch milliseconds, as the API reports times."""
import time


def now_ms() -> int:
    return int(time.time() * 1000)
