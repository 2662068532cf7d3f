"""What a user sees in a terminal: `python train.py` under a pseudo-terminal draws the progress bar
below the run directory line."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from conftest import ROOT, subprocess_env

# a small MLP for 20 steps, logging every 5: on a terminal the bar replaces those log lines
RUN = ["model.name=mlp", "model.width=16", "data.name=mnist1d", "train.batch_size=50", "train.eval_batch_size=500",
       "train.log_every=5", "train.steps=20", "train.eval_every=10", "mesh.data=1"]


def test_progress_bar_on_a_terminal_follows_the_run_directory_line(tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a terminal 160 wide
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *RUN,
                             f"run.dir={tmp_path}", "run.name=tty", "run.plots=false"],
                            stdout=follower, stderr=follower, cwd=tmp_path,
                            env=subprocess_env())
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0, out[-2000:]
    text = out.decode(errors="replace")
    line = text[text.index("run directory:"):].split("\n")[0]
    assert line.strip() == f"run directory: {tmp_path / 'tty'}"   # whole: no bar drawn into it
    assert "20/20" in text and "loss=" in text and "lr=" in text and "acc=" in text
    assert "step=5 " not in text  # a terminal gets the bar, not the plain lines
