"""Settings: the pydantic models, the source file with env interpolation, the field rules,
the public-key rules, and the edits `keys add/remove` make to bastion.toml."""
