"""The local trainer: a separate process (`python -m cascade_studio.trainer JOB_DIR`) that fine-tunes
an open causal LM on the user's machine with torch/transformers/peft (the `local` extra).

It talks to the app through files in its job folder only, so it outlives the GUI:
  spec.json       what to train (written by services/finetune/local_backend.py)
  progress.jsonl  JSON lines it appends: state, event, metrics, checkpoint, result
  cancel, pause   flag files the app creates; SIGTERM also cancels
  trainer.log     its stdout/stderr
On several devices or machines the app starts it under torchrun (see trainer/distributed.py): every
process trains its share of each batch, and rank 0 alone writes the progress file.
Imports core only (import-linter contract), never the app's services, store or Qt.
"""
