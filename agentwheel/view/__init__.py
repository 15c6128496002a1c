"""The offline episode and run browser: one self-contained HTML page of a run, eval or task
directory (`agentwheel view`). It reads what runs wrote and never imports the trainer."""
