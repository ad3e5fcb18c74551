"""The base model: where its files come from, loading and quantization, LoRA, chat templates and labels, memory."""
