"""The vendors' APIs that hand out tunnel keys: dbt Cloud (a connection's SSH tunnel) and
Fivetran (a group's public key), over one checked HTTP client."""
