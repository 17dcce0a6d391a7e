"""The CPU world: synthetic arithmetic tasks, a locally trained tokenizer and a tiny Llama."""
