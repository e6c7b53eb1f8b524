"""The stages across AWS and the host: locate, plan, up (plan, apply, verify), and the
two-phase ssh_port change."""
