"""The demo job: reads its data from working_dir, uses a py_module, and reads an env var."""
import os
import sys

import mylib

with open("data/words.txt") as f:
    words = f.read().split()

print(f"cwd:         {os.getcwd()}")
print(f"TF_WARNINGS: {os.environ.get('TF_WARNINGS')}")
print(f"mylib:       {mylib.__file__}")
print(f"result:      {mylib.shout(words)}")
sys.exit(0)
