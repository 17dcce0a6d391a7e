"""TRL trainer subclasses of the stage kinds that need more than TRL's own trainers. They import torch and
TRL when imported, so only a running stage imports them (harness/stages/<kind>.py)."""
