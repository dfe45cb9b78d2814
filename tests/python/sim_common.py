"""What the SDK scripts share: waiting for the simulator to reach a state."""
import time


def wait(what, probe, timeout=60):
    """Polls `probe` every 0.2 s until it returns something true, and returns that; exits naming
    `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit("timed out waiting for " + what)
