"""Each SaaS tool bastion serves: its published source addresses (data files with their
source and date)."""
