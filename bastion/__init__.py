"""bastion: a hardened, verified SSH bastion for dbt Cloud and tools like it."""

__version__ = "0.1.0"
