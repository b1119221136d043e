"""The seed's quick start: `pip install -r requirements.txt && python example.py`.

Starts the same server as the `fal-openai-proxy` command. Without FAL_KEY it runs in
pass-through mode (each client's Bearer key is its fal key); `--simulate` answers from the
built-in fal simulator, so a first try needs no account (`make run` picks it by itself).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from fal_openai_proxy.serve.cli import main

if __name__ == "__main__":
    main(sys.argv[1:])
