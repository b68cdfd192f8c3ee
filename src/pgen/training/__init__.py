"""Per-user optimization: text LoRA, DPO from feedback, subject adapters, concept tokens.

``personalize/`` decides what to train and with which data; the loops live here."""
