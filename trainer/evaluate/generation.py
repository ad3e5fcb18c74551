"""Greedy answers to held-out prompts, as the served model gives them."""

from __future__ import annotations

from trainer.model.tokens import render


def generate(
    model, tokenizer, prompts: list[list[dict[str, str]]], max_new_tokens: int, label: str = "generating"
) -> list[str]:
    """Greedy answers to chat prompts (the conversation up to the assistant's turn)."""
    import torch

    from trainer.model.progress import RowProgress

    device = next(model.parameters()).device
    answers = []
    model.eval()
    progress = RowProgress(label, len(prompts))
    for messages in prompts:
        text = render(tokenizer, messages, add_generation_prompt=True)
        inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(device)
        with torch.no_grad():
            output = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())
        progress.advance()
    progress.finish()
    return answers
